package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// Every reader of a fill whose bytes do not verify gets an error, never a
// whole body; each bad fill is counted; nothing is cached, so the next
// read fills again, correctly.
func TestCorruptUpstreamNeverCached(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d, want := layer(t, e.up, upRepo+":3.10", 300_000)
		e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), Corrupt: true})
		var wg sync.WaitGroup
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := e.read(context.Background(), repo, d)
				if err == nil {
					t.Errorf("a corrupt fill completed a read of %d bytes (equal to upstream: %v)", len(b), bytes.Equal(b, want))
				}
				if errors.Is(err, cache.ErrBlobUnknown) {
					t.Errorf("a corrupt fill answered unknown: %v", err)
				}
			}()
		}
		wg.Wait()
		bad := e.up.Count("GET", "/blobs/"+d.String())
		if got := e.metric("airlock_fill_failures_total"); got < 1 || int(got) != bad {
			t.Fatalf("fill failures %v, want one per upstream GET (%d)", got, bad)
		}
		e.up.ClearFaults()
		if b, err := e.read(context.Background(), repo, d); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("refill: %v, equal=%v", err, bytes.Equal(b, want))
		}
		if n := e.up.Count("GET", "/blobs/"+d.String()); n != bad+1 {
			t.Fatalf("upstream GETs %d, want %d (bad fills, then one refill)", n, bad+1)
		}
	})
}

// A body cut mid-way is resumed with Range (or, from an upstream that
// ignores Range, by skipping what arrived), and the result is cached.
func TestCutBodyResumedWithRange(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ignoreRange bool
	}{{"range", false}, {"no-range-support", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachBackend(t, func(t *testing.T, s stores) {
				e := newEnv(t, s, envOpt{})
				d, want := layer(t, e.up, upRepo+":3.10", 500_000)
				blobPath := "/blobs/" + d.String()
				e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: blobPath, CutAfter: 200_000, Times: 1})
				if tc.ignoreRange {
					e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: blobPath, IgnoreRange: true})
				}
				if b, err := e.read(context.Background(), repo, d); err != nil || !bytes.Equal(b, want) {
					t.Fatalf("resumed fill: %v, %d bytes, equal=%v", err, len(b), bytes.Equal(b, want))
				}
				if n := e.up.Count("GET", blobPath); n != 2 {
					t.Fatalf("upstream GETs %d, want 2 (cut, resume)", n)
				}
				e.up.Reset()
				if b, err := e.read(context.Background(), repo, d); err != nil || !bytes.Equal(b, want) || e.up.Total() != 0 {
					t.Fatalf("resumed blob not served from cache: %v, %d upstream requests", err, e.up.Total())
				}
			})
		})
	}
}

// The resume asks for exactly the bytes after the cut.
func TestResumeSendsRangeHeader(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		var mu sync.Mutex
		var ranges []string
		up := upstreamtest.New(t)
		rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == "GET" {
				mu.Lock()
				ranges = append(ranges, r.Header.Get("Range"))
				mu.Unlock()
			}
			up.Server.Config.Handler.ServeHTTP(w, r)
		}))
		t.Cleanup(rec.Close)
		e := newEnv(t, s, envOpt{upstream: up, endpoint: rec.URL})
		d, want := layer(t, up, upRepo+":3.10", 400_000)
		up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), CutAfter: 100_000, Times: 1})
		if b, err := e.read(context.Background(), repo, d); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("body differs: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=100000-"+fmt.Sprint(len(want)-1) {
			t.Fatalf("upstream Range headers %q: want a first full GET, then a resume from the cut", ranges)
		}
	})
}

// An upstream body that stops sending (no error, no bytes) is abandoned
// after exactly the stall timeout and resumed from where it stopped.
func TestStalledUpstreamBodyResumed(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		const stall = time.Minute
		f := upstreamtest.NewFake()
		img := f.PutImage(upRepo, "3.10", 400_000, "pause")
		e := newEnv(t, s, envOpt{fake: f, engine: []engine.Option{engine.WithStallTimeout(stall)}})
		f.Hold(img.Layer, 100_000) // never released: the first body stalls
		start := time.Now()
		b, err := e.read(context.Background(), repo, img.Layer)
		if err != nil || !bytes.Equal(b, img.Bytes) {
			t.Fatalf("stalled fill: %v, %d bytes, equal=%v", err, len(b), bytes.Equal(b, img.Bytes))
		}
		if n := f.Count("blob GET"); n != 2 {
			t.Fatalf("upstream GETs %d, want 2 (stalled, resumed)", n)
		}
		// The stall timer fired at its timeout; the resume waited its
		// first backoff (100ms).
		if took := time.Since(start); took < stall || took > stall+time.Second {
			t.Fatalf("the stalled body was resumed after %v, want the stall timeout (%v) and a backoff", took, stall)
		}
	})
}
