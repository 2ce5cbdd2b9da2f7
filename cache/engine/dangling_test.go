package engine_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// pulledTag pushes an image as upRepo:tag upstream and pulls its manifest
// through the engine once; it returns the manifest's digest.
func (e *env) pulledTag(tag string) digest.Digest {
	e.t.Helper()
	img := e.up.PushImage(e.t, upRepo+":"+tag, 64, 1)
	md, _ := img.Digest()
	if _, err := e.eng.Manifest(context.Background(), repo, tag, false); err != nil {
		e.t.Fatal(err)
	}
	return digest.Digest(md.String())
}

// A manifest linked without its bytes (they were lost, or a collection
// deleted them) is fetched again, once, and then served from the store.
func TestManifestLinkedWithoutBytesFetchedAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d := e.pulledTag("3.10")
		ctx := context.Background()
		if err := s.content.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if m, err := e.eng.Manifest(ctx, repo, "3.10", false); err != nil || m.Digest != d {
				t.Fatalf("a manifest linked without bytes: %v", err)
			}
		}
		if n := e.up.Count("GET", "/manifests/"); n != 2 {
			t.Fatalf("upstream manifest GETs %d, want 2 (the first pull, the lost bytes once)", n)
		}
		if _, err := s.content.Stat(ctx, d); err != nil {
			t.Fatalf("the bytes fetched again were not kept: %v", err)
		}
	})
}

// missingOpens fails the next n opens of one blob as if it were gone,
// while Stat finds it: the bytes came back between a request's read and
// its check, as when another request fetched them meanwhile.
type missingOpens struct {
	content.Store
	mu sync.Mutex
	d  digest.Digest
	n  int
}

func (s *missingOpens) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, content.Info, error) {
	s.mu.Lock()
	missing := d == s.d && s.n > 0
	if missing {
		s.n--
	}
	s.mu.Unlock()
	if missing {
		return nil, content.Info{}, fmt.Errorf("open %s: %w", d, content.ErrNotFound)
	}
	return s.Store.Open(ctx, d)
}

// A request whose reads find the bytes gone twice, and the bytes back when
// it checks, looks once more and is served: it never fails because
// another request healed the link first.
func TestManifestBytesBackWhileLookingServed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		flaky := &missingOpens{Store: s.content}
		s.content = flaky
		e := newEnv(t, s, envOpt{})
		d := e.pulledTag("3.10")
		ctx := context.Background()
		flaky.mu.Lock()
		flaky.d, flaky.n = d, 2
		flaky.mu.Unlock()
		if _, err := e.eng.Manifest(ctx, repo, "3.10", false); err != nil {
			t.Fatalf("bytes back while the request looked: %v", err)
		}
		if n := e.up.Count("GET", "/manifests/"); n != 1 {
			t.Fatalf("upstream manifest GETs %d, want 1: the bytes were there", n)
		}
	})
}

// collectedWhileLinking deletes a manifest's bytes from the store just
// before its link is written, once, as a collection that found them
// unreferenced does while the link waits for it.
type collectedWhileLinking struct {
	meta.Store
	content content.Store
	once    sync.Once
}

func (x *collectedWhileLinking) PutManifest(ctx context.Context, repo string, d digest.Digest, m meta.Manifest, tag string, t meta.Tag) error {
	x.once.Do(func() { x.content.Delete(ctx, d) })
	return x.Store.PutManifest(ctx, repo, d, m, tag, t)
}

// A fetched manifest whose bytes a collection deleted between their write
// and their link is written again: the link never stays without bytes,
// and the next request is served from the store.
func TestManifestCollectedWhileLinkedKept(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		full, ok := s.index.(meta.Store)
		if !ok {
			t.Fatalf("%T is not a whole metadata index", s.index)
		}
		s.index = &collectedWhileLinking{Store: full, content: s.content}
		e := newEnv(t, s, envOpt{})
		d := e.pulledTag("3.10")
		ctx := context.Background()
		if _, err := s.content.Stat(ctx, d); err != nil {
			t.Fatalf("a manifest linked without its bytes: %v", err)
		}
		if _, err := e.eng.Manifest(ctx, repo, "3.10", false); err != nil {
			t.Fatal(err)
		}
		if n := e.up.Count("GET", "/manifests/"); n != 1 {
			t.Fatalf("upstream manifest GETs %d, want 1", n)
		}
	})
}
