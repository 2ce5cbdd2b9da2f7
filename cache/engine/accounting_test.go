package engine

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/ociclient"
	"github.com/airlock/airlock/upstream/upstreamtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

const (
	testLocal = "aks-managed-repository/oss/app" // the local repository the tests pull
	testUp    = "oss/app"                        // its upstream repository
)

// engineClock is a time source that moves only when told.
type engineClock struct{ ns atomic.Int64 }

func (c *engineClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *engineClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newTestEngine is an engine over an fsstore and a badger index, with the
// AKS rule (or rs) in front of a test upstream reached as
// mcr.microsoft.com, on a clock that moves only when told.
func newTestEngine(t *testing.T, rs ...rules.Rule) (*Engine, *upstreamtest.Upstream) {
	e, up, _ := newTestEngineClock(t, rs...)
	return e, up
}

func newTestEngineClock(t *testing.T, rs ...rules.Rule) (*Engine, *upstreamtest.Upstream, *engineClock) {
	t.Helper()
	return newTestEngineWith(t, testEngineOpts{rules: rs})
}

// testEngineOpts are the less common settings of a test engine.
type testEngineOpts struct {
	rules []rules.Rule
	store func(content.Store) content.Store // wraps the fsstore
	opts  []Option
}

func newTestEngineWith(t *testing.T, o testEngineOpts) (*Engine, *upstreamtest.Upstream, *engineClock) {
	t.Helper()
	rs := o.rules
	clock := &engineClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	up := upstreamtest.New(t)
	dir := t.TempDir()
	fs, err := fsstore.New(dir + "/content")
	if err != nil {
		t.Fatal(err)
	}
	var store content.Store = fs
	if o.store != nil {
		store = o.store(fs)
	}
	index, err := meta.Open(dir+"/meta", zap.NewNop(), meta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { index.Close() })
	reg := prometheus.NewRegistry()
	client, err := ociclient.New([]ociclient.Endpoint{{Host: "mcr.microsoft.com", URL: up.URL()}}, zap.NewNop(), reg,
		ociclient.WithBackoff(transport.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(store, index, client, zap.NewNop(), reg, append([]Option{WithClock(clock.Now), WithRevalidateTimeout(5 * time.Second)}, o.opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		rs = []rules.Rule{{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}}
	}
	set, err := rules.NewSet(rs)
	if err != nil {
		t.Fatal(err)
	}
	e.SetRules(set, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Idle(ctx)
	})
	return e, up, clock
}

// readBlob reads a blob response whole, as the registry does: every byte,
// then the fill's verification.
func readBlob(ctx context.Context, b *cache.Blob) ([]byte, error) {
	defer b.Content.Close()
	body, err := io.ReadAll(b.Content)
	if err != nil {
		return nil, err
	}
	if b.Wait != nil {
		if err := b.Wait(ctx); err != nil {
			return nil, err
		}
	}
	if got := digest.FromBytes(body); got != b.Digest {
		return nil, fmt.Errorf("blob %s: body hashes to %s", b.Digest, got)
	}
	return body, nil
}

// holdOnMiss stops the request whose context carries holdKey where it has
// missed the index, until release is closed; reached is closed when it
// gets there.
type holdKey struct{}

func holdOnMiss(e *Engine, kind string) (reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	e.hooks.missed = func(ctx context.Context, k string) {
		if k == kind && ctx.Value(holdKey{}) != nil {
			close(reached)
			<-release
		}
	}
	return reached, release
}

func waitTimeout(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// A request that misses the index just before a fill of the same blob for
// the same repository commits, links and leaves must not take the blob for
// one held for another repository: that cost an upstream HEAD in cold
// storms (issue 12). The request is held right after its index miss while
// another pulls the blob whole.
func TestMissJustBeforeLinkCostsNoHead(t *testing.T) {
	t.Parallel()
	e, up := newTestEngine(t)
	img := up.PushImage(t, testUp+":1", 20_000, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	d := digest.Digest(ld.String())
	reached, release := holdOnMiss(e, "blob")

	late := make(chan error, 1)
	go func() {
		ctx := context.WithValue(context.Background(), holdKey{}, true)
		b, err := e.Blob(ctx, testLocal, d, false)
		if err == nil {
			_, err = readBlob(ctx, b)
		}
		late <- err
	}()
	waitTimeout(t, reached, "the late request to miss the index")

	ctx := context.Background()
	b, err := e.Blob(ctx, testLocal, d, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBlob(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := e.Idle(ctx); err != nil { // the fill has linked and left
		t.Fatal(err)
	}
	close(release)
	if err := <-late; err != nil {
		t.Fatalf("late request: %v", err)
	}
	if h, g := up.Count("HEAD", "/blobs/"), up.Count("GET", "/blobs/"); h != 0 || g != 1 {
		t.Fatalf("upstream blob requests: %d HEAD, %d GET; want 0 and 1", h, g)
	}
}

// Requests of a second repository for a blob being filled for a first
// one cost one confirming HEAD in all: one that comes after the
// confirmation ended, before the confirmed request joined the fill, joins
// without asking again.
func TestConfirmedRepositoryJoinsWithoutAsking(t *testing.T) {
	t.Parallel()
	e, up := newTestEngine(t)
	img := up.PushImage(t, testUp+":1", 300_000, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	d := digest.Digest(ld.String())
	resume := make(chan struct{})
	up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 64 << 10, Resume: resume})
	ctx := context.Background()
	first, err := e.Blob(ctx, testLocal, d, false) // the fill, for the first repository
	if err != nil {
		t.Fatal(err)
	}
	const other = "aks-managed-repository/oss/other"
	reached, release := holdOnMiss(e, "confirmed")
	confirmed := make(chan error, 1)
	go func() {
		hctx := context.WithValue(ctx, holdKey{}, true)
		b, err := e.Blob(hctx, other, d, false)
		if err == nil {
			_, err = readBlob(hctx, b)
		}
		confirmed <- err
	}()
	waitTimeout(t, reached, "the second repository's confirmation")
	late, err := e.Blob(ctx, other, d, false) // follows the fill once it has its size
	if err != nil {
		t.Fatal(err)
	}
	close(resume)
	close(release)
	if _, err := readBlob(ctx, late); err != nil {
		t.Fatal(err)
	}
	if err := <-confirmed; err != nil {
		t.Fatal(err)
	}
	if _, err := readBlob(ctx, first); err != nil {
		t.Fatal(err)
	}
	if h, g := up.Count("HEAD", "/blobs/"), up.Count("GET", "/blobs/"); h != 1 || g != 1 {
		t.Fatalf("upstream: %d HEAD, %d GET; want 1 and 1", h, g)
	}
}

// The same for manifests: a request that missed a tag or a digest just
// before the fetch of it stored it and ended must not fetch it again.
func TestMissJustBeforeManifestStoredCostsNoGet(t *testing.T) {
	t.Parallel()
	e, up := newTestEngine(t)
	up.PushImage(t, testUp+":1", 1000, 1)
	img := up.PushImage(t, testUp+":2", 1000, 1)
	md, _ := img.Digest()
	for _, ref := range []string{"1", md.String()} {
		reached, release := holdOnMiss(e, "manifest")
		late := make(chan error, 1)
		go func() {
			ctx := context.WithValue(context.Background(), holdKey{}, true)
			_, err := e.Manifest(ctx, testLocal, ref, false)
			late <- err
		}()
		waitTimeout(t, reached, "the late request to miss the index")
		if _, err := e.Manifest(context.Background(), testLocal, ref, false); err != nil {
			t.Fatal(err)
		}
		close(release)
		if err := <-late; err != nil {
			t.Fatalf("late request for %s: %v", ref, err)
		}
		if n := up.Count("GET", "/manifests/"+ref); n != 1 {
			t.Errorf("upstream GETs of manifest %s: %d, want 1", ref, n)
		}
	}
}

// A cold storm costs exactly what the image is: one upstream GET per tag,
// per manifest by digest and per blob, one ping, and nothing else — no
// HEAD, no second GET — however the requests interleave. Each client pulls
// as containerd does (HEAD the tag, GET the index, the platform's manifest,
// its config and layers); the storm is repeated on new images so that
// several interleavings are tried.
func TestColdStormExactUpstreamRequests(t *testing.T) {
	t.Parallel()
	e, up := newTestEngine(t)
	const clients, rounds = 24, 4
	for round := range rounds {
		tag := fmt.Sprint("r", round)
		idx := up.PushIndex(t, testUp+":"+tag, 30_000)
		im, _ := idx.IndexManifest()
		child := im.Manifests[0].Digest
		img, err := idx.Image(child)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"GET /v2/" + testUp + "/manifests/" + tag: 1, "GET /v2/" + testUp + "/manifests/" + child.String(): 1}
		if round == 0 {
			want["GET /v2/"] = 1 // one login for the repository, ever
		}
		blobs := imageBlobs(t, img)
		for _, b := range blobs {
			want["GET /v2/"+testUp+"/blobs/"+b.String()] = 1
		}
		up.Reset()
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- pullLikeContainerd(context.Background(), e, tag, child, blobs)
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := up.Counts(); !maps.Equal(got, want) {
			t.Fatalf("round %d: %d clients cost upstream requests\n%v\nwant exactly\n%v", round, clients, sorted(got), sorted(want))
		}
	}
}

func pullLikeContainerd(ctx context.Context, e *Engine, tag string, child v1.Hash, blobs []v1.Hash) error {
	h, err := e.Manifest(ctx, testLocal, tag, true)
	if err != nil {
		return fmt.Errorf("HEAD tag: %w", err)
	}
	if _, err := e.Manifest(ctx, testLocal, h.Digest.String(), false); err != nil {
		return fmt.Errorf("GET index: %w", err)
	}
	if _, err := e.Manifest(ctx, testLocal, child.String(), false); err != nil {
		return fmt.Errorf("GET manifest: %w", err)
	}
	for _, d := range blobs {
		b, err := e.Blob(ctx, testLocal, digest.Digest(d.String()), false)
		if err != nil {
			return fmt.Errorf("GET blob %s: %w", d, err)
		}
		if _, err := readBlob(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// imageBlobs is the config and layer digests of img.
func imageBlobs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func sorted(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%d × %s", v, k))
	}
	slices.Sort(out)
	return out
}
