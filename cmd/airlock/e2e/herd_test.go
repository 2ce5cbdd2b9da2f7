package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// metric sums the samples of a Prometheus counter whose labels contain all
// of the given `name="value"` pairs, from airlock's /metrics.
func (a *airlockServer) metric(t *testing.T, ctx context.Context, name string, labels ...string) float64 {
	t.Helper()
	body, err := nsHTTP(ctx, a.ns, http.MethodGet, a.url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		match := true
		for _, want := range labels {
			match = match && strings.Contains(l, want)
		}
		if f := strings.Fields(l); match && len(f) == 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

// The herd: a cold image of three layers (4, 2 and 1 MiB) whose upstream
// bodies are capped at 2 MiB/s, so that the fills (up to 2 s) are still
// running while the other nodes ask.
var herdMarArgs = []string{"--extra", "herd/cold:v1=4MiB,2MiB,1MiB", "--fault", "kind=blob-data,bw=2MiB"}

// herdChunk is the parallel-fetch chunk of the containerd 2 herd: smaller
// than the layers, so that each node fetches them as ranges.
const herdChunk = 1 << 20

// Eight containerd daemons (own roots and sockets: eight nodes), 1.6 and
// 2.x, pull the same cold image through airlock at the same moment
// (herdScenario).
func TestContainerdHerd(t *testing.T) {
	t.Parallel()
	eachRelease(t, 3*time.Minute, func(t *testing.T, ctx context.Context, rel release) {
		m, p := localPath(t, ctx, "herdbootstrap", "herd", herdMarArgs...)
		herdScenario(t, ctx, rel, m, p, 8)
	})
}

// herdScenario: nodes daemons pull herd/cold:v1 through p at the same
// moment: every node gets the image, unpacked, and the emulator sees one
// GET per blob. containerd 2 nodes fetch with parallel layer fetch on
// (herdChunk), so the fills also serve ranges past what they have fetched
// to many nodes at once; every ranged GET is answered 206 with the stored
// bytes (checkRangedBlobs).
func herdScenario(t *testing.T, ctx context.Context, rel release, m *marServer, p pullPath, nodes int) {
	t.Helper()
	p.mark()
	img := mustImage(t, m.images(t, ctx), "herd/cold:v1")
	var fetch labnode.FetchConfig
	if rel.v2() {
		fetch = parallelFetch(herdChunk)
	}
	daemons := make([]*containerd, nodes)
	for i := range daemons {
		daemons[i] = startContainerd(t, ctx, rel, "", p.node(i), fetch)
	}
	m.resetStats(t, ctx)
	start := make(chan struct{})
	errs := make([]error, nodes)
	took := make([]time.Duration, nodes)
	var wg sync.WaitGroup
	for i, c := range daemons {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			errs[i] = c.pull(ctx, img.Ref().String())
			took[i] = time.Since(t0)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, c := range daemons {
		c.checkImages(t, ctx, []catalog.Image{img}, true)
	}

	st := m.stats(t, ctx)
	_, blobs := platformBlobs(t, img, "linux/amd64")
	for _, d := range blobs {
		if gets, fetches := st.Count("GET", mar.KindBlob, d.String()), st.Fetches(d.String()); gets != 1 || fetches != 1 {
			t.Errorf("blob %s: %d GETs upstream (%d successful fetches), want exactly 1", d, gets, fetches)
		}
	}
	coalesced := p.metric(t, ctx, "airlock_cache_coalesced_total", `kind="blob"`)
	hits := p.metric(t, ctx, "airlock_cache_hits_total", `kind="blob"`)
	misses := p.metric(t, ctx, "airlock_cache_misses_total", `kind="blob"`)
	// One airlock: one miss per blob, the other nodes joined its fills.
	// Replicas each miss and relay (or hit what another committed): the
	// cluster's truth is the upstream's one GET per blob, checked above.
	if len(p.airlocks) == 1 && (misses != float64(len(blobs)) || coalesced == 0) {
		t.Errorf("airlock blob misses %v (want %d, one per blob), coalesced %v (want > 0: the nodes did not overlap)", misses, len(blobs), coalesced)
	}
	n := p.checkMirrorRequests(t, rel.ua)
	checkDaemonRequests(t, p, daemons...)
	ranges := ""
	if rel.v2() {
		ranged, chunks := checkRangedBlobs(t, p, daemons...)
		if chunks == 0 {
			t.Errorf("no containerd 2 node fetched a chunk past offset 0 (chunk %d bytes): parallel fetch was not exercised", herdChunk)
		}
		ranges = fmt.Sprintf(" (%d ranged GETs, %d of them chunks past offset 0, all answered 206)", ranged, chunks)
	}
	t.Logf("%d %s nodes pulled %s (%d blobs, %.1f MiB) in %v (slowest %v): %d requests to airlock%s; blobs: %v misses, %v coalesced, %v hits; upstream: %d blob GETs",
		nodes, rel.name, img.Ref(), len(blobs), float64(sum(img))/(1<<20), wall.Round(time.Millisecond), slowest(took).Round(time.Millisecond),
		n, ranges, misses, coalesced, hits, st.Count("GET", mar.KindBlobData, ""))
}

func sum(img catalog.Image) int64 {
	var n int64
	for _, pm := range img.Platforms {
		n += pm.Config.Size
		for _, l := range pm.Layers {
			n += l.Size
		}
	}
	return n
}

func slowest(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
