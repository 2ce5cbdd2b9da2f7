package engine_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/upstream/upstreamtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// holdKey marks the context of the request holdOnMiss stops.
type holdKey struct{}

// holdOnMiss stops the request whose context carries holdKey where it has
// missed the index (kind "blob", "manifest" or "confirmed"), until release
// is closed; reached is closed when it gets there.
func holdOnMiss(e *engine.Engine, kind string) (reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	engine.OnMiss(e, func(ctx context.Context, k string) {
		if k == kind && ctx.Value(holdKey{}) != nil {
			close(reached)
			<-release
		}
	})
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
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d, _ := layer(t, e.up, upRepo+":1", 20_000)
		reached, release := holdOnMiss(e.eng, "blob")

		late := make(chan error, 1)
		go func() {
			_, err := e.read(context.WithValue(context.Background(), holdKey{}, true), repo, d)
			late <- err
		}()
		waitTimeout(t, reached, "the late request to miss the index")

		ctx := context.Background()
		if _, err := e.read(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
		if err := e.eng.Idle(ctx); err != nil { // the fill has linked and left
			t.Fatal(err)
		}
		close(release)
		if err := <-late; err != nil {
			t.Fatalf("late request: %v", err)
		}
		if h, g := e.up.Count("HEAD", "/blobs/"), e.up.Count("GET", "/blobs/"); h != 0 || g != 1 {
			t.Fatalf("upstream blob requests: %d HEAD, %d GET; want 0 and 1", h, g)
		}
	})
}

// Requests of a second repository for a blob being filled for a first
// one cost one confirming HEAD in all: one that comes after the
// confirmation ended, before the confirmed request joined the fill, joins
// without asking again.
func TestConfirmedRepositoryJoinsWithoutAsking(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d, _ := layer(t, e.up, upRepo+":1", 300_000)
		resume := make(chan struct{})
		e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 64 << 10, Resume: resume})
		ctx := context.Background()
		first, err := e.eng.Blob(ctx, repo, d, false) // the fill, for the first repository
		if err != nil {
			t.Fatal(err)
		}
		defer first.Content.Close()
		const other = "aks-managed-repository/oss/other"
		reached, release := holdOnMiss(e.eng, "confirmed")
		confirmed := make(chan error, 1)
		go func() {
			_, err := e.read(context.WithValue(ctx, holdKey{}, true), other, d)
			confirmed <- err
		}()
		waitTimeout(t, reached, "the second repository's confirmation")
		late, err := e.eng.Blob(ctx, other, d, false) // follows the fill once it has its size
		if err != nil {
			t.Fatal(err)
		}
		defer late.Content.Close()
		close(resume)
		close(release)
		if err := verified(ctx, late); err != nil {
			t.Fatal(err)
		}
		if err := <-confirmed; err != nil {
			t.Fatal(err)
		}
		if err := verified(ctx, first); err != nil {
			t.Fatal(err)
		}
		if h, g := e.up.Count("HEAD", "/blobs/"), e.up.Count("GET", "/blobs/"); h != 1 || g != 1 {
			t.Fatalf("upstream: %d HEAD, %d GET; want 1 and 1", h, g)
		}
	})
}

// The same for manifests: a request that missed a tag or a digest just
// before the fetch of it stored it and ended must not fetch it again.
func TestMissJustBeforeManifestStoredCostsNoGet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		e.up.PushImage(t, upRepo+":1", 1000, 1)
		img := e.up.PushImage(t, upRepo+":2", 1000, 1)
		md, _ := img.Digest()
		for _, ref := range []string{"1", md.String()} {
			reached, release := holdOnMiss(e.eng, "manifest")
			late := make(chan error, 1)
			go func() {
				ctx := context.WithValue(context.Background(), holdKey{}, true)
				_, err := e.eng.Manifest(ctx, repo, ref, false)
				late <- err
			}()
			waitTimeout(t, reached, "the late request to miss the index")
			if _, err := e.eng.Manifest(context.Background(), repo, ref, false); err != nil {
				t.Fatal(err)
			}
			close(release)
			if err := <-late; err != nil {
				t.Fatalf("late request for %s: %v", ref, err)
			}
			if n := e.up.Count("GET", "/manifests/"+ref); n != 1 {
				t.Errorf("upstream GETs of manifest %s: %d, want 1", ref, n)
			}
		}
	})
}

// A cold storm costs exactly what the image is: one upstream GET per tag,
// per manifest by digest and per blob, one ping, and nothing else — no
// HEAD, no second GET — however the requests interleave. Each client pulls
// as containerd does (HEAD the tag, GET the index, the platform's manifest,
// its config and layers); the storm is repeated on new images so that
// several interleavings are tried.
func TestColdStormExactUpstreamRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		const clients, rounds = 24, 4
		for round := range rounds {
			tag := fmt.Sprint("r", round)
			idx := e.up.PushIndex(t, upRepo+":"+tag, 30_000)
			im, _ := idx.IndexManifest()
			child := im.Manifests[0].Digest
			img, err := idx.Image(child)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"GET /v2/" + upRepo + "/manifests/" + tag: 1, "GET /v2/" + upRepo + "/manifests/" + child.String(): 1}
			if round == 0 {
				want["GET /v2/"] = 1 // one login for the repository, ever
			}
			blobs := imageBlobs(t, img)
			for _, b := range blobs {
				want["GET /v2/"+upRepo+"/blobs/"+b.String()] = 1
			}
			e.up.Reset()
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, clients)
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs <- e.pullLikeContainerd(context.Background(), tag, child, blobs)
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
			if got := e.up.Counts(); !maps.Equal(got, want) {
				t.Fatalf("round %d: %d clients cost upstream requests\n%v\nwant exactly\n%v", round, clients, sorted(got), sorted(want))
			}
		}
	})
}

func (e *env) pullLikeContainerd(ctx context.Context, tag string, child v1.Hash, blobs []v1.Hash) error {
	h, err := e.eng.Manifest(ctx, repo, tag, true)
	if err != nil {
		return fmt.Errorf("HEAD tag: %w", err)
	}
	if _, err := e.eng.Manifest(ctx, repo, h.Digest.String(), false); err != nil {
		return fmt.Errorf("GET index: %w", err)
	}
	if _, err := e.eng.Manifest(ctx, repo, child.String(), false); err != nil {
		return fmt.Errorf("GET manifest: %w", err)
	}
	for _, d := range blobs {
		if _, err := e.read(ctx, repo, digest.Digest(d.String())); err != nil {
			return fmt.Errorf("GET blob %s: %w", d, err)
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
