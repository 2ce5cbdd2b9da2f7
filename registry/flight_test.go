package registry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/upstreamtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func layerOf(t *testing.T, img v1.Image) (v1.Hash, []byte) {
	t.Helper()
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	b, _ := io.ReadAll(rc)
	rc.Close()
	return d, b
}

// get starts a GET and returns the response without reading the body.
func (e *env) get(ctx context.Context, path string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	return e.client.Do(req)
}

// A cold blob reaches an HTTP client while the fill runs: it receives
// bytes while the upstream body is held half way, and the whole blob once
// the digest verifies. (How many upstream requests a storm of readers
// costs is the engine's: cache/engine's TestSingleFlightBlob.)
func TestColdBlobStreamsOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 1<<20, 1)
	d, want := layerOf(t, img)
	resume := make(chan struct{})
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 256 << 10, Resume: resume})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.get(ctx, "/v2/"+repo+"/blobs/"+d.String()+"?ns=mcr.microsoft.com")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The upstream has sent a quarter of the blob and waits: the client
	// must have its first bytes now, not when the fill ends.
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first bytes while the fill is held: %d %v", resp.StatusCode, err)
	}
	close(resume)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(first, rest...), want) {
		t.Fatalf("body after the fill: %v, equal=%v", err, bytes.Equal(append(first, rest...), want))
	}
}
