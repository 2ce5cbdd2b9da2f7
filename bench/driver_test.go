package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// startMAR starts an emulator with the small catalog for one test.
func startMAR(t *testing.T, extra ...catalog.Extra) *mar.Server {
	t.Helper()
	m, err := mar.New(mar.Config{Seed: 1, Extra: extra}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func testEnv(t *testing.T, m *mar.Server, tg target, opts Options) *runEnv {
	t.Helper()
	opts.defaults()
	set, err := newPullSet(m.Catalog(), opts.Minor)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := tg.start(t.Context(), startEnv{upstream: m.URL(), dir: t.TempDir(), cat: m.Catalog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.stop() })
	return &runEnv{opts: &opts, mar: m, inst: inst, set: set}
}

// Three nodes pulling straight from the emulator fetch every blob three
// times, and the driver says so; with a bare server in front, none.
func TestDriverCountsUpstreamFetches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		target     func() target
		nodes      int
		perBlob    int64
		wantUpReqs bool
	}{
		{directTarget, 1, 1, true},
		{directTarget, 3, 3, true},
		{bareTarget, 3, 0, false},
	}
	for _, c := range cases {
		env := testEnv(t, startMAR(t), c.target(), Options{Nodes: c.nodes})
		t.Run(fmt.Sprintf("%s/%d-nodes", env.inst.name, c.nodes), func(t *testing.T) {
			t.Parallel()
			res := env.pullNodes(t.Context(), c.nodes, 1, Arrival{})
			if res.FailedPulls != 0 || res.Errors != 0 || res.Corrupt != 0 {
				t.Fatalf("failures: %+v", res)
			}
			u := res.Upstream
			if u.FetchesPerBlobMin != c.perBlob || u.FetchesPerBlobMax != c.perBlob || u.Blobs != len(env.set.blobs) {
				t.Fatalf("fetches per blob %d-%d over %d blobs, want %d", u.FetchesPerBlobMin, u.FetchesPerBlobMax, u.Blobs, c.perBlob)
			}
			if u.BlobBytes != c.perBlob*env.set.size || (u.Requests > 0) != c.wantUpReqs {
				t.Fatalf("upstream %+v", u)
			}
			if len(res.PullS) != c.nodes || res.Pull.N != c.nodes || res.TTFB.N < c.nodes*len(env.set.blobs) {
				t.Fatalf("samples: %d pulls, %d TTFBs", len(res.PullS), res.TTFB.N)
			}
			if min := int64(c.nodes) * env.set.size; res.Bytes <= min {
				t.Fatalf("clients received %d bytes, want more than the blobs' %d", res.Bytes, min)
			}
		})
	}
}

// A server that answers a blob with the right length but wrong bytes is
// counted as a corrupt and failed pull, never as a success.
func TestDriverDetectsCorruptBlobs(t *testing.T) {
	t.Parallel()
	corrupting := handlerTarget("corrupting", func(cat *catalog.Catalog) http.Handler {
		bare := bareHandler(cat)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") {
				w = flipWriter{w}
			}
			bare.ServeHTTP(w, r)
		})
	})
	env := testEnv(t, startMAR(t), corrupting, Options{})
	res := env.pullNodes(t.Context(), 1, 1, Arrival{})
	if res.Corrupt == 0 || res.FailedPulls != 1 || !strings.Contains(res.FirstFailure, "corrupt") {
		t.Fatalf("corrupt %d, failed %d (%s)", res.Corrupt, res.FailedPulls, res.FirstFailure)
	}
}

// flipWriter inverts the first byte of every write.
type flipWriter struct{ http.ResponseWriter }

func (f flipWriter) Write(p []byte) (int, error) {
	q := append([]byte(nil), p...)
	if len(q) > 0 {
		q[0] ^= 0xff
	}
	return f.ResponseWriter.Write(q)
}

// The flaky scenario's faults reach clients that talk to the emulator
// directly; the client resumes cut bodies with Range.
func TestFlakyFaultsHitDirectClients(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	env := testEnv(t, m, directTarget(), Options{})
	fs := flakyFaults(env.set)
	if len(fs) != 2 || fs[0].Cut == nil || *fs[0].Cut != (env.set.blobs[fs[0].Digest]+1)/2 || fs[1].ErrorRate != flakyErrorRate {
		t.Fatalf("faults %+v", fs)
	}
	if err := m.SetFaults(fs...); err != nil {
		t.Fatal(err)
	}
	res := env.pullNodes(t.Context(), 2, 1, Arrival{})
	if res.Errors == 0 || res.Retries == 0 || res.Corrupt != 0 {
		t.Fatalf("errors %d, retries %d, corrupt %d", res.Errors, res.Retries, res.Corrupt)
	}
	if d := res.Upstream.PerDigest; len(d) == 0 {
		t.Fatal("no per-digest stats")
	}
}

// The ranges scenario on the emulator: every range arrives intact, cold and
// warm, and upstream bytes equal what the ranges cover.
func TestRangesScenarioDirect(t *testing.T) {
	t.Parallel()
	m := startMAR(t, catalog.Extra{Repo: largeRef.Repo, Tag: largeRef.Tag, LayerSizes: []int64{1 << 20}})
	env := testEnv(t, m, directTarget(), Options{LargeSize: 1 << 20, RangeSize: 64 << 10, RangeCount: 16})
	prs, err := rangesScenario(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 2 || prs[0].phase != "cold" || prs[1].phase != "warm" {
		t.Fatalf("phases %+v", prs)
	}
	for _, pr := range prs {
		r := pr.run
		if r.FailedPulls != 0 || r.Pull.N != 16 || r.Bytes != 16*64<<10 || r.Upstream.BlobBytes != 16*64<<10 || r.Upstream.BlobDataGETs != 16 {
			t.Fatalf("%s: %+v", pr.phase, r)
		}
	}
}

// A body cut mid-way is resumed; a server that then ignores Range and sends
// the whole blob again is handled like containerd does (skip what we have),
// so the pull succeeds with one retry per cut blob.
func TestClientResumesAndSkipsWhenRangeIgnored(t *testing.T) {
	t.Parallel()
	flaky := handlerTarget("flaky", func(cat *catalog.Catalog) http.Handler {
		bare := bareHandler(cat)
		var mu sync.Mutex
		cut := map[string]bool{}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/blobs/") {
				bare.ServeHTTP(w, r)
				return
			}
			r.Header.Del("Range")
			mu.Lock()
			first := !cut[r.URL.Path]
			cut[r.URL.Path] = true
			mu.Unlock()
			if first {
				bare.ServeHTTP(&cutWriter{ResponseWriter: w, left: 100}, r)
				return
			}
			bare.ServeHTTP(w, r)
		})
	})
	env := testEnv(t, startMAR(t), flaky, Options{})
	res := env.pullNodes(t.Context(), 1, 1, Arrival{})
	if res.FailedPulls != 0 || res.Corrupt != 0 {
		t.Fatalf("failed %d (%s), corrupt %d", res.FailedPulls, res.FirstFailure, res.Corrupt)
	}
	big := 0
	for _, size := range env.set.blobs {
		if size > 100 {
			big++
		}
	}
	if res.Retries != int64(big) || res.Errors != int64(big) {
		t.Fatalf("retries %d, errors %d; want one each per blob over 100 bytes (%d)", res.Retries, res.Errors, big)
	}
}

// cutWriter sends the first left body bytes, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		c.ResponseWriter.Write(p[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= len(p)
	return c.ResponseWriter.Write(p)
}
