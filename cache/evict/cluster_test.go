package evict_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// The tests of this file run two replicas' collectors on one container:
// each has its own container client, index (azmeta) and content store
// (azstore), sharing only what is in Azure.

// flushEvery is the replicas' access flush interval in these tests.
const flushEvery = 300 * time.Millisecond

// sections counts the Exclusive sections running at once, over every
// replica.
type sections struct {
	mu      sync.Mutex
	in, max int
}

// sectionIndex is an index whose Exclusive sections are counted.
type sectionIndex struct {
	*azmeta.Index
	s *sections
}

func (x sectionIndex) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	return x.ExclusivePrepared(ctx, nil, fn)
}

// ExclusivePrepared counts the section from the start of its preparation
// to the end of fn (both under the lease).
func (x sectionIndex) ExclusivePrepared(ctx context.Context, prepare, fn func(ctx context.Context) error) error {
	out := func() {
		x.s.mu.Lock()
		x.s.in--
		x.s.mu.Unlock()
	}
	entered := false
	enter := func() {
		entered = true
		x.s.mu.Lock()
		x.s.in++
		x.s.max = max(x.s.max, x.s.in)
		x.s.mu.Unlock()
	}
	defer func() {
		if entered {
			out()
		}
	}()
	return x.Index.ExclusivePrepared(ctx, func(ctx context.Context) error {
		enter()
		if prepare != nil {
			return prepare(ctx)
		}
		return nil
	}, func(ctx context.Context) error {
		defer func() { // before the lease goes
			entered = false
			out()
		}()
		return fn(ctx)
	})
}

type gcReplica struct {
	ctr   *azure.Container
	idx   *azmeta.Index
	store *azstore.Store
	col   *evict.Collector
}

// gcReplicas opens n replicas' collectors on one new container; opts, if
// not nil, adds options given the replica's container client.
func gcReplicas(t *testing.T, srv *azuritetest.Server, n int, p evict.Policy, s *sections, opts func(*azure.Container) []evict.Option) []*gcReplica {
	t.Helper()
	name := azuritetest.ContainerName("g")
	var out []*gcReplica
	for range n {
		ctr := azuretest.Open(t, srv, name)
		idx, err := azmeta.New(context.Background(), ctr, zap.NewNop(), nil, azmeta.WithSettle(100*time.Millisecond), azmeta.WithMutableTTL(0), azmeta.WithImmutableTTL(0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() }) // waits for its reads in the background
		store, err := azstore.New(ctr, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var index evict.Index = idx
		if s != nil {
			index = sectionIndex{idx, s}
		}
		o := []evict.Option{evict.WithFlushInterval(flushEvery), evict.WithCluster(evict.Cluster{})}
		if opts != nil {
			o = append(o, opts(ctr)...)
		}
		col, err := evict.New(store, index, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry(), p, o...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &gcReplica{ctr: ctr, idx: idx, store: store, col: col})
	}
	return out
}

// gcImage is a cached image put in the shared store and index.
type gcImage struct {
	repo     string
	manifest digest.Digest
	layer    digest.Digest
	size     int64 // manifest and layer bytes
}

// putImage stores a one-layer image as repo:latest, recorded as added
// (and last used) at added, cached or pushed.
func putImage(t *testing.T, r *gcReplica, repo string, layerSize int, added time.Time, o meta.Origin) gcImage {
	t.Helper()
	ctx := context.Background()
	layer := make([]byte, layerSize)
	copy(layer, repo)
	ld := digest.FromBytes(layer)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"layers": []any{map[string]any{"digest": ld, "size": layerSize}}})
	md := digest.FromBytes(m)
	for d, b := range map[digest.Digest][]byte{ld: layer, md: m} {
		if _, err := content.WriteBlob(ctx, r.store, d, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.idx.LinkBlob(ctx, repo, ld, meta.Blob{Size: int64(layerSize), Origin: o, Added: added}); err != nil {
		t.Fatal(err)
	}
	rec := meta.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(m)), Refs: []digest.Digest{ld}, Origin: o, Added: added}
	tag := meta.Tag{Digest: md, MediaType: rec.MediaType, Size: rec.Size, FetchedAt: added, Origin: o}
	if err := r.idx.PutManifest(ctx, repo, md, rec, "latest", tag); err != nil {
		t.Fatal(err)
	}
	return gcImage{repo: repo, manifest: md, layer: ld, size: int64(layerSize + len(m))}
}

// present reports whether img's manifest is still linked and its layer
// stored.
func present(t *testing.T, r *gcReplica, img gcImage) bool {
	t.Helper()
	ctx := azmeta.WithoutCache(context.Background())
	_, merr := r.idx.Manifest(ctx, img.repo, img.manifest)
	_, serr := r.store.Stat(ctx, img.layer)
	switch {
	case merr == nil && serr == nil:
		return true
	case errors.Is(merr, meta.ErrNotFound) && errors.Is(serr, content.ErrNotFound):
		return false
	}
	t.Fatalf("%s half evicted: manifest %v, layer %v", img.repo, merr, serr)
	return false
}

// images puts n images, the i-th last used i hours after the first.
func images(t *testing.T, r *gcReplica, n int, o func(i int) meta.Origin) []gcImage {
	t.Helper()
	base := time.Now().Add(-time.Duration(n+1) * time.Hour)
	var out []gcImage
	for i := range n {
		origin := meta.OriginCache
		if o != nil {
			origin = o(i)
		}
		out = append(out, putImage(t, r, fmt.Sprintf("team/img%02d", i), 1000, base.Add(time.Duration(i)*time.Hour), origin))
	}
	return out
}

func sum(imgs []gcImage) int64 {
	var n int64
	for _, i := range imgs {
		n += i.size
	}
	return n
}

// Two replicas' collectors start at once on a store over its high
// watermark: their sections never overlap, and together they evict what
// one collection needs (the least recently used images down to the low
// watermark), not twice that: the second walks the store after the
// first's section.
func testTwoCollectors(t *testing.T, srv *azuritetest.Server) {
	s := &sections{}
	// Quota: 10 images of ~1.1 KB over the high watermark (0.9), the low
	// one (0.8) reached by evicting two.
	rs := gcReplicas(t, srv, 2, evict.Policy{}, s, nil)
	imgs := images(t, rs[0], 10, nil)
	for _, r := range rs {
		if err := r.col.SetPolicy(evict.Policy{MaxBytes: sum(imgs) * 100 / 95, HighWatermark: 0.9, LowWatermark: 0.8}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	reps := make([]evict.Report, 2)
	errs := make([]error, 2)
	for i, r := range rs {
		wg.Go(func() { reps[i], errs[i] = r.col.Collect(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("collector %d: %v", i+1, err)
		}
	}
	if s.max != 1 {
		t.Fatalf("%d exclusive sections ran at once", s.max)
	}
	if n := reps[0].EvictedImages + reps[1].EvictedImages; n != 2 {
		t.Fatalf("the two collectors evicted %d images (%+v, %+v), want the 2 one collection needs", n, reps[0], reps[1])
	}
	for i, img := range imgs {
		if got := present(t, rs[1], img); got != (i >= 2) {
			t.Fatalf("image %d (last used %d h ago) present: %v", i, 10-i, got)
		}
	}
}

// Pins set through one replica and pushed content hold against the other
// replica's collector: it evicts the next least recently used images.
func testPinsAcrossReplicas(t *testing.T, srv *azuritetest.Server) {
	rs := gcReplicas(t, srv, 2, evict.Policy{}, nil, nil)
	imgs := images(t, rs[0], 4, func(i int) meta.Origin {
		if i == 1 {
			return meta.OriginPush
		}
		return meta.OriginCache
	})
	used := sum(imgs)
	// Over the high watermark; the low one needs two images gone.
	if err := rs[1].col.SetPolicy(evict.Policy{MaxBytes: used * 100 / 95, HighWatermark: 0.9, LowWatermark: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := rs[0].idx.PutPins(context.Background(), []meta.Pin{{Ref: imgs[0].repo + ":latest", Owner: "test", Added: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs[1].col.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false, false} {
		if got := present(t, rs[0], imgs[i]); got != want {
			t.Fatalf("image %d (pinned on r1: %v, pushed: %v) present: %v", i, i == 0, i == 1, got)
		}
	}
}

// A blob nothing references, past the grace period, stays while another
// replica holds a live fill record for it, and is collected once the
// record is gone.
func testNeverAFillingBlob(t *testing.T, srv *azuritetest.Server) {
	r := gcReplicas(t, srv, 1, evict.Policy{}, nil, func(ctr *azure.Container) []evict.Option {
		return []evict.Option{evict.WithGrace(0), evict.WithCluster(evict.Cluster{Fills: cluster.NewFillRecords(ctr)})}
	})[0]
	ctx := context.Background()
	b := []byte("a blob a replica is filling")
	d := digest.FromBytes(b)
	if _, err := content.WriteBlob(ctx, r.store, d, b); err != nil {
		t.Fatal(err)
	}
	name := cluster.FillName(d)
	if _, err := r.ctr.Put(ctx, name, []byte(`{"holder":"10.0.0.6:5000"}`), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	l, err := r.ctr.AcquireLease(ctx, name, azure.MinLease)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.col.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Stat(ctx, d); err != nil {
		t.Fatalf("a blob with a live fill record was collected: %v", err)
	}
	if err := r.ctr.Delete(ctx, name, l.Cond()); err != nil { // the fill released its record
		t.Fatal(err)
	}
	if _, err := r.col.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("the unreferenced blob after its fill record went: %v", err)
	}
}

// Images read on one replica just before another replica's collection
// began are kept, though they were the least recently used, and though
// the quota still wants more gone: the collection waits for every
// replica's reads to reach the shared log (r1 flushes while r2 waits, as
// its periodic flush would), then spares what was read within the read
// grace.
func testReadOnAnotherReplica(t *testing.T, srv *azuritetest.Server) {
	const flush = time.Second
	rs := gcReplicas(t, srv, 2, evict.Policy{}, nil, func(*azure.Container) []evict.Option {
		return []evict.Option{evict.WithFlushInterval(flush)}
	})
	imgs := images(t, rs[0], 4, nil)
	// Under the low watermark only with three images gone.
	if err := rs[1].col.SetPolicy(evict.Policy{MaxBytes: sum(imgs) * 100 / 95, HighWatermark: 0.9, LowWatermark: 0.3}); err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs[:2] { // a node pulls the two oldest images through r1
		rs[0].col.Tracker().Touch(img.repo, img.manifest)
	}
	done := make(chan error, 1)
	go func() {
		_, err := rs[1].col.Collect(context.Background())
		done <- err
	}()
	time.Sleep(flush / 4)
	if err := rs[0].col.Tracker().Flush(context.Background(), rs[0].idx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false, false} {
		if got := present(t, rs[0], imgs[i]); got != want {
			t.Fatalf("image %d present: %v, want %v (images 0 and 1 were read on r1 as r2's collection began)", i, got, want)
		}
	}
}

// The quota counts the container's bytes: what another replica commits
// reaches this replica's usage within a refresh, without a collection
// and without this replica reading the blobs.
func testUsageIsTheContainers(t *testing.T, srv *azuritetest.Server) {
	rs := gcReplicas(t, srv, 2, evict.Policy{}, nil, func(*azure.Container) []evict.Option {
		return []evict.Option{evict.WithInterval(time.Hour), evict.WithCluster(evict.Cluster{Refresh: 100 * time.Millisecond})}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs[1].col.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	var want int64
	for i := range 3 {
		b := make([]byte, 10_000+i)
		if _, err := content.WriteBlob(context.Background(), rs[0].col.Store(), digest.FromBytes(b), b); err != nil {
			t.Fatal(err)
		}
		want += int64(len(b))
	}
	if got := rs[0].col.Used(); got != want {
		t.Fatalf("the writing replica counts %d bytes, want %d", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rs[1].col.Used() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica counts %d bytes after 10 s, want the container's %d", rs[1].col.Used(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCluster runs the tests of replicas sharing one container on one
// Azurite, each on its own container.
func TestCluster(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	azuritetest.Tests{
		"TwoCollectors":        testTwoCollectors,
		"PinsAcrossReplicas":   testPinsAcrossReplicas,
		"NeverAFillingBlob":    testNeverAFillingBlob,
		"ReadOnAnotherReplica": testReadOnAnotherReplica,
		"UsageIsTheContainers": testUsageIsTheContainers,
	}.Run(t, srv)
}
