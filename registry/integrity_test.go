package registry_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/airlock/airlock/upstream/upstreamtest"
)

// Clients streaming a fill that does not verify see a broken transfer (or
// a 5xx), never a complete response: the registry holds the last byte
// until the digest verifies. A later request is answered whole. (That the
// bad fill is not cached and how it is counted is cache/engine's
// TestCorruptUpstreamNeverCached.)
func TestCorruptFillBreaksResponses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 300_000, 1)
	d, want := layerOf(t, img)
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), Corrupt: true})
	path := "/v2/" + repo + "/blobs/" + d.String()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.get(context.Background(), path)
			if err != nil {
				return // refused outright is fine too
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				if resp.StatusCode < 500 {
					t.Errorf("status %d", resp.StatusCode)
				}
				return
			}
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Errorf("a corrupt fill completed a response of %d bytes (equal to upstream: %v)", len(b), bytes.Equal(b, want))
			}
		}()
	}
	wg.Wait()
	e.up.ClearFaults()
	resp, b := e.do("GET", path)
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		t.Fatalf("refill: %d equal=%v", resp.StatusCode, bytes.Equal(b, want))
	}
}
