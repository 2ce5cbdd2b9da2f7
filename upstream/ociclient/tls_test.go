package ociclient

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Upstream TLS is verified unless the endpoint is marked insecure.
func TestUpstreamTLSVerification(t *testing.T) {
	t.Parallel()
	quiet := log.New(io.Discard, "", 0)
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(quiet)))
	srv.Config.ErrorLog = quiet // the refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	ref, err := name.ParseReference(host + "/oss/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(100, 1)
	if err := remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	r := upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/app"}
	for _, insecure := range []bool{false, true} {
		c, err := New([]Endpoint{{Host: "mcr.microsoft.com", URL: srv.URL, Insecure: insecure}}, zap.NewNop(), prometheus.NewRegistry(),
			WithBackoff(transport.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Manifest(context.Background(), r, "v1", true)
		switch {
		case insecure && err != nil:
			t.Fatalf("insecure endpoint: %v", err)
		case !insecure && (err == nil || !strings.Contains(err.Error(), "certificate")):
			t.Fatalf("an untrusted certificate was accepted: %v", err)
		}
	}
}
