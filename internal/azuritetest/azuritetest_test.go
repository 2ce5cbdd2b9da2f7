package azuritetest

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Start serves the blob API on a loopback port and the cleanup stops it.
func TestStartServesAndCleanupStops(t *testing.T) {
	t.Parallel()
	var base string
	t.Run("running", func(t *testing.T) {
		s := Start(t)
		if !strings.HasPrefix(s.ServiceURL, "http://127.0.0.1:") || !strings.HasSuffix(s.ServiceURL, "/"+AccountName) {
			t.Fatalf("ServiceURL %q", s.ServiceURL)
		}
		// Without credentials the service answers, and refuses.
		resp, err := http.Get(s.ServiceURL + "?comp=list")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-error-code") == "" {
			t.Fatalf("anonymous list: %d %q", resp.StatusCode, resp.Header.Get("x-ms-error-code"))
		}
		base = strings.TrimSuffix(s.ServiceURL, "/"+AccountName)
	})
	if base == "" {
		t.Skip("azurite did not run")
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	if err == nil {
		c.Close()
		t.Fatal("azurite still listens after the test that started it ended")
	}
}

// Container names are fresh on each call and valid for Azure: the prefix,
// then lower-case hex.
func TestContainerName(t *testing.T) {
	t.Parallel()
	a, b := ContainerName("t"), ContainerName("t")
	if a == b {
		t.Fatalf("two calls gave %q", a)
	}
	if len(a) != 13 || strings.Trim(a[1:], "0123456789abcdef") != "" || a[0] != 't' {
		t.Fatalf("ContainerName(%q) = %q", "t", a)
	}
}
