package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// Eight containerd daemons (own roots and sockets: eight nodes) pull the same
// cold image through airlock at the same moment. The emulator caps each blob
// body at 2 MiB/s so that the fills (up to 2 s) are still running while the
// other nodes ask: every node gets the image, unpacked, and the emulator sees one
// GET per blob.
func TestContainerdHerd(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const nodes = 8
	ctx := testContext(t, 3*time.Minute)
	m := startMar(t, "", "127.0.0.1:0", "127.0.0.1:0",
		"--extra", "herd/cold:v1=4MiB,2MiB,1MiB", "--fault", "kind=blob-data,bw=2MiB")
	a := startAirlock(t, "", "127.0.0.1:0", m.url, "control:\n  registry: herdbootstrap\n")
	certs := a.provisionNode(t, ctx, "herd", t.TempDir(), "http://"+closedPort(t))
	img := mustImage(t, m.images(t, ctx), "herd/cold:v1")

	daemons := make([]*containerd, nodes)
	for i := range daemons {
		daemons[i] = startContainerd(t, ctx, "")
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
			errs[i] = c.pull(ctx, certs, img.Ref().String())
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
	coalesced := a.metric(t, ctx, "airlock_cache_coalesced_total", `kind="blob"`)
	hits := a.metric(t, ctx, "airlock_cache_hits_total", `kind="blob"`)
	misses := a.metric(t, ctx, "airlock_cache_misses_total", `kind="blob"`)
	if misses != float64(len(blobs)) || coalesced == 0 {
		t.Errorf("airlock blob misses %v (want %d, one per blob), coalesced %v (want > 0: the nodes did not overlap)", misses, len(blobs), coalesced)
	}
	n := a.checkMirrorRequests(t, "containerd")
	t.Logf("%d nodes pulled %s (%d blobs, %.1f MiB) in %v (slowest %v): %d requests to airlock; blobs: %v misses, %v coalesced, %v hits; upstream: %d blob GETs",
		nodes, img.Ref(), len(blobs), float64(sum(img))/(1<<20), wall.Round(time.Millisecond), slowest(took).Round(time.Millisecond),
		n, misses, coalesced, hits, st.Count("GET", mar.KindBlobData, ""))
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
