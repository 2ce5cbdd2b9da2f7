package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/engine"

	"github.com/airlock/airlock/upstream/upstreamtest"
)

func TestCorruptUpstreamNeverCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 300_000, 1)
	d, want := layerOf(t, img)
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), Corrupt: true})
	path := "/v2/" + repo + "/blobs/" + d.String()

	// Several clients stream the bad fill: every one must see a broken
	// transfer, never a complete response.
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
	bad := e.up.Count("GET", "/blobs/"+d.String())
	if got := e.metric("airlock_fill_failures_total"); got < 1 || int(got) != bad {
		t.Fatalf("fill failures %v, want one per upstream GET (%d)", got, bad)
	}
	// Nothing was cached: the next request fills again, correctly.
	e.up.ClearFaults()
	resp, b := e.do("GET", path)
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		t.Fatalf("refill: %d equal=%v", resp.StatusCode, bytes.Equal(b, want))
	}
	if n := e.up.Count("GET", "/blobs/"+d.String()); n != bad+1 {
		t.Fatalf("upstream GETs %d, want %d (bad fills, then one refill)", n, bad+1)
	}
}

func TestCutBodyResumedWithRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		ignoreRange bool
	}{{"range", false}, {"no-range-support", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpt{})
			img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 500_000, 1)
			d, want := layerOf(t, img)
			blobPath := "/blobs/" + d.String()
			e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: blobPath, CutAfter: 200_000, Times: 1})
			if tc.ignoreRange {
				e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: blobPath, IgnoreRange: true})
			}
			resp, b := e.do("GET", "/v2/"+repo+blobPath)
			if resp.StatusCode != 200 || !bytes.Equal(b, want) {
				t.Fatalf("resumed fill: %d, %d bytes, equal=%v", resp.StatusCode, len(b), bytes.Equal(b, want))
			}
			if n := e.up.Count("GET", blobPath); n != 2 {
				t.Fatalf("upstream GETs %d, want 2 (cut, resume)", n)
			}
			e.up.Reset()
			if _, b := e.do("GET", "/v2/"+repo+blobPath); !bytes.Equal(b, want) || e.up.Total() != 0 {
				t.Fatalf("resumed blob not served from cache")
			}
		})
	}
}

func TestResumeSendsRangeHeader(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ranges []string
	up := upstreamtest.New(t)
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == "GET" {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
		}
		up.Server.Config.Handler.ServeHTTP(w, r)
	})
	wrapped := upstreamtestServer(t, rec)
	e := newEnv(t, envOpt{upstream: up, endpoint: wrapped})
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 400_000, 1)
	d, want := layerOf(t, img)
	up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), CutAfter: 100_000, Times: 1})
	if _, b := e.do("GET", "/v2/"+repo+"/blobs/"+d.String()); !bytes.Equal(b, want) {
		t.Fatal("body differs")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] != "bytes=100000-"+fmt.Sprint(len(want)-1) {
		t.Fatalf("upstream Range headers %q: want a first full GET, then a resume from the cut", ranges)
	}
}

// An upstream body that stops sending (no error, no bytes) is abandoned
// after the stall timeout and resumed from where it stopped.
func TestStalledUpstreamBodyResumed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{engine: []engine.Option{engine.WithStallTimeout(300 * time.Millisecond)}})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 400_000, 1)
	d, want := layerOf(t, img)
	never := make(chan struct{}) // the first body never continues
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 100_000, Resume: never, Times: 1})
	resp, b := e.do("GET", "/v2/"+repo+"/blobs/"+d.String())
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		t.Fatalf("stalled fill: %d, %d bytes, equal=%v", resp.StatusCode, len(b), bytes.Equal(b, want))
	}
	if n := e.up.Count("GET", "/blobs/"+d.String()); n != 2 {
		t.Fatalf("upstream GETs %d, want 2 (stalled, resumed)", n)
	}
}
