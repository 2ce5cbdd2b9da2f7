package azuritetest

import (
	"net/http"
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Tests calling Shared get one server.
func TestShared(t *testing.T) {
	t.Parallel()
	a, b := Shared(t), Shared(t)
	if a != b || a.ServiceURL == "" {
		t.Fatalf("Shared gave %p and %p", a, b)
	}
	resp, err := a.HTTPClient.Get(a.ServiceURL + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// A stopped server answers nothing; restarted, it answers at the same
// address.
func TestStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	url := s.ServiceURL
	s.Stop()
	if resp, err := http.Get(url + "?comp=list"); err == nil {
		resp.Body.Close()
		t.Fatal("a stopped azurite answered")
	}
	s.Restart(t)
	if s.ServiceURL != url {
		t.Fatalf("restarted at %s, was %s", s.ServiceURL, url)
	}
	resp, err := http.Get(url + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("restarted azurite answered %d", resp.StatusCode)
	}
}
