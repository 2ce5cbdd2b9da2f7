package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
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

// A cold blob reaches HTTP clients while the fill runs: each receives
// bytes while the upstream body is held half way, and the whole blob once
// it verifies. (How many upstream requests a storm costs is the engine's:
// cache/engine's TestSingleFlightBlob.)
func TestColdBlobStreamsOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 1<<20, 1)
	d, want := layerOf(t, img)
	resume := make(chan struct{})
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 256 << 10, Resume: resume})
	path := "/v2/" + repo + "/blobs/" + d.String() + "?ns=mcr.microsoft.com"

	const clients = 3
	var started, finished sync.WaitGroup
	started.Add(clients)
	finished.Add(clients)
	errs := make(chan error, clients)
	for range clients {
		go func() {
			defer finished.Done()
			resp, err := e.get(context.Background(), path)
			if err != nil {
				started.Done()
				errs <- err
				return
			}
			defer resp.Body.Close()
			first := make([]byte, 1024)
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				started.Done()
				errs <- err
				return
			}
			started.Done() // this client streams while the fill is held
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != 200 || !bytes.Equal(append(first, rest...), want) {
				errs <- errors.New("body differs")
			}
		}()
	}
	waitOrFail(t, &started, 20*time.Second, "clients to receive their first bytes while the fill is held")
	close(resume)
	waitOrFail(t, &finished, 20*time.Second, "clients to finish")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
}
