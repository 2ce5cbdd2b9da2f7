package metatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Remove drops the named links with their access records and referrers,
// skips missing ones, keeps the rest, and drops a cached repository (not a
// pushed one) it leaves empty.
func testRemove(t *testing.T, x Index) {
	a := putImage(t, x, "cached", "v1", meta.OriginCache, "a")
	b := putImage(t, x, "cached", "v2", meta.OriginCache, "b")
	p := putImage(t, x, "pushed", "v1", meta.OriginPush, "p")
	var as []meta.Access
	for _, d := range []digest.Digest{a, dg("a/layer"), b, dg("b/layer")} {
		as = append(as, meta.Access{Repo: "cached", Digest: d, At: at(1)})
	}
	must(t, "access", x.PutAccess(ctx(), as))
	ref := meta.Referrers{Body: []byte(`{}`), MediaType: "application/vnd.oci.image.index.v1+json", FetchedAt: at(1)}
	must(t, "referrers", x.PutReferrers(ctx(), "cached", a, ref))
	must(t, "referrers", x.PutReferrers(ctx(), "cached", b, ref))

	must(t, "remove image a", x.Remove(ctx(), meta.Removal{
		Repo: "cached", Tags: []string{"v1", "missing"},
		Manifests: []digest.Digest{a, dg("missing")},
		Blobs:     []digest.Digest{dg("a/config"), dg("a/layer"), dg("missing")},
	}))
	_, err := x.Tag(ctx(), "cached", "v1")
	notFound(t, "removed tag", err)
	_, err = x.Manifest(ctx(), "cached", a)
	notFound(t, "removed manifest", err)
	_, err = x.Blob(ctx(), "cached", dg("a/layer"))
	notFound(t, "removed blob link", err)
	_, err = x.Referrers(ctx(), "cached", a)
	notFound(t, "referrers of a removed manifest", err)
	if _, err := x.Tag(ctx(), "cached", "v2"); err != nil {
		t.Fatalf("a tag not named in the removal went: %v", err)
	}
	if _, err := x.Manifest(ctx(), "cached", b); err != nil {
		t.Fatalf("a manifest not named in the removal went: %v", err)
	}
	if _, err := x.Referrers(ctx(), "cached", b); err != nil {
		t.Fatalf("referrers of a kept manifest went: %v", err)
	}
	same(t, "access records left", eachAccess(t, x), nil, sortAccess([]meta.Access{{Repo: "cached", Digest: b, At: at(1)}, {Repo: "cached", Digest: dg("b/layer"), At: at(1)}}))
	if _, err := x.Repo(ctx(), "cached"); err != nil {
		t.Fatalf("a repository that still holds content left the catalog: %v", err)
	}

	must(t, "remove image b", x.Remove(ctx(), meta.Removal{Repo: "cached", Tags: []string{"v2"}, Manifests: []digest.Digest{b}, Blobs: []digest.Digest{dg("b/config"), dg("b/layer")}}))
	_, err = x.Repo(ctx(), "cached")
	notFound(t, "an emptied cached repository", err)
	must(t, "remove everything pushed", x.Remove(ctx(), meta.Removal{Repo: "pushed", Tags: []string{"v1"}, Manifests: []digest.Digest{p}, Blobs: []digest.Digest{dg("p/config"), dg("p/layer")}}))
	if r, err := x.Repo(ctx(), "pushed"); err != nil || r.Origin != meta.OriginPush {
		t.Fatalf("an emptied pushed repository must stay: %+v %v", r, err)
	}
	repos, _, err := x.Repos(ctx(), "", 0)
	same(t, "catalog", repos, err, []string{"pushed"})
	must(t, "remove from an unknown repository", x.Remove(ctx(), meta.Removal{Repo: "unknown", Tags: []string{"x"}}))
}

// Exclusive holds back links until fn returns; inside it, removals work;
// it hands fn a context carrying the caller's values and returns fn's
// error.
func testExclusive(t *testing.T, x Index) {
	type key struct{}
	parent := context.WithValue(ctx(), key{}, "v")
	d := dg("blob")
	linked := make(chan error, 1)
	putImage(t, x, "r", "old", meta.OriginCache, "old")
	err := x.Exclusive(parent, func(ctx context.Context) error {
		if ctx.Value(key{}) != "v" {
			t.Error("fn's context lost the caller's values")
		}
		go func() {
			linked <- x.LinkBlob(context.Background(), "r", d, meta.Blob{Size: 1, Origin: meta.OriginCache, Added: at(0)})
		}()
		// The link must not commit while fn runs: look for a while.
		for range 20 {
			if _, err := x.Blob(ctx, "r", d); !errors.Is(err, meta.ErrNotFound) {
				return fmt.Errorf("a blob was linked inside an Exclusive section: %v", err)
			}
			select {
			case err := <-linked:
				return fmt.Errorf("LinkBlob returned (%v) inside an Exclusive section", err)
			case <-time.After(time.Millisecond):
			}
		}
		if _, err := x.RemoveManifest(ctx, "r", dg("old")); err != nil {
			return err
		}
		if err := x.UnlinkBlob(ctx, "r", dg("old/layer")); err != nil {
			return err
		}
		if err := x.DeleteAccess(ctx, []meta.Access{{Repo: "r", Digest: dg("old")}}); err != nil {
			return err
		}
		return x.Remove(ctx, meta.Removal{Repo: "r", Blobs: []digest.Digest{dg("old/config")}})
	})
	must(t, "exclusive", err)
	select {
	case err := <-linked:
		must(t, "link after the exclusive section", err)
	case <-time.After(10 * time.Second):
		t.Fatal("LinkBlob still waits after the exclusive section ended")
	}
	if _, err := x.Blob(ctx(), "r", d); err != nil {
		t.Fatalf("the held-back link is missing: %v", err)
	}
	stop := errors.New("stop")
	if err := x.Exclusive(ctx(), func(context.Context) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Exclusive must return fn's error: %v", err)
	}
}

// Concurrent writers lose nothing: every tag, manifest and blob link of
// every writer is there, a tag written by many holds one writer's whole
// record, and a repository any writer pushed to is a pushed one.
func testConcurrentWriters(t *testing.T, x Index) {
	const writers, each = 8, 25
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			o := meta.OriginCache
			if w == writers-1 {
				o = meta.OriginPush
			}
			for i := range each {
				d := dg(fmt.Sprintf("%d/%d", w, i))
				repo := fmt.Sprintf("w%d", w)
				if err := errors.Join(
					x.LinkBlob(ctx(), "shared", d, meta.Blob{Size: int64(i), Origin: o, Added: at(i)}),
					x.PutManifest(ctx(), repo, d, manifestOf(o, at(i)), fmt.Sprintf("t%02d", i), tagOf(d, o, at(i))),
					x.PutTag(ctx(), "shared", "latest", tagOf(d, o, at(w))),
					x.PutAccess(ctx(), []meta.Access{{Repo: repo, Digest: d, At: at(i)}}),
				); err != nil {
					return err
				}
			}
			return nil
		})
	}
	must(t, "concurrent writes", g.Wait())
	n := 0
	must(t, "walk blobs", x.EachBlob(ctx(), "shared", func(meta.BlobLink) error { n++; return nil }))
	if n != writers*each {
		t.Fatalf("%d blob links of %d", n, writers*each)
	}
	for w := range writers {
		tags, _, err := x.Tags(ctx(), fmt.Sprintf("w%d", w), "", 0)
		if err != nil || len(tags) != each {
			t.Fatalf("writer %d: %d tags (%v), want %d", w, len(tags), err, each)
		}
	}
	latest, err := x.Tag(ctx(), "shared", "latest")
	k := slices.Index(writersDigests(writers, each), latest.Digest)
	if err != nil || k < 0 {
		t.Fatalf("the tag written by every writer holds %s (%v), no writer's digest", latest.Digest, err)
	}
	writer := k / each
	o := meta.OriginCache
	if writer == writers-1 {
		o = meta.OriginPush
	}
	same(t, "the tag written by every writer (one writer's whole record)", latest, nil, tagOf(latest.Digest, o, at(writer)))
	if r, err := x.Repo(ctx(), "shared"); err != nil || r.Origin != meta.OriginPush {
		t.Fatalf("a repository one writer pushed to is %+v (%v), want pushed", r, err)
	}
	as := eachAccess(t, x)
	if len(as) != writers*each {
		t.Fatalf("%d access records of %d", len(as), writers*each)
	}
}

func writersDigests(writers, each int) []digest.Digest {
	var out []digest.Digest
	for w := range writers {
		for i := range each {
			out = append(out, dg(fmt.Sprintf("%d/%d", w, i)))
		}
	}
	return out
}

// Everything written survives a close and a reopen.
func testReopen(t *testing.T, o Open) {
	x := o(t)
	d, child := dg("index"), dg("child")
	tag := tagOf(d, meta.OriginCache, at(1))
	m := manifestOf(meta.OriginCache, at(1), child)
	m.Subject, m.Annotations, m.ArtifactType = dg("subject"), map[string]string{"k": "v"}, "application/vnd.example"
	b := meta.Blob{Size: 77, Origin: meta.OriginPush, Added: at(2)}
	ref := meta.Referrers{Body: []byte(`{"manifests":[]}`), MediaType: "application/vnd.oci.image.index.v1+json", FetchedAt: at(3)}
	pin := meta.Pin{Ref: "a/b:v1", Owner: "cluster/x", Added: at(4)}
	acc := meta.Access{Repo: "a/b", Digest: d, At: at(5)}
	must(t, "put manifest", x.PutManifest(ctx(), "a/b", d, m, "v1", tag))
	must(t, "link blob", x.LinkBlob(ctx(), "team/app", child, b))
	must(t, "put referrers", x.PutReferrers(ctx(), "a/b", d, ref))
	must(t, "put pins", x.PutPins(ctx(), []meta.Pin{pin}))
	must(t, "put access", x.PutAccess(ctx(), []meta.Access{acc}))
	must(t, "close", x.Close())

	x = open(t, o)
	gt, err := x.Tag(ctx(), "a/b", "v1")
	same(t, "tag after reopen", gt, err, tag)
	gm, err := x.Manifest(ctx(), "a/b", d)
	same(t, "manifest after reopen", gm, err, m)
	gb, err := x.Blob(ctx(), "team/app", child)
	same(t, "blob after reopen", gb, err, b)
	gr, err := x.Referrers(ctx(), "a/b", d)
	same(t, "referrers after reopen", gr, err, ref)
	ps, err := x.Pins(ctx())
	same(t, "pins after reopen", ps, err, []meta.Pin{pin})
	same(t, "access after reopen", eachAccess(t, x), nil, []meta.Access{acc})
	r, err := x.Repo(ctx(), "a/b")
	same(t, "repository after reopen", r, err, meta.Repo{Origin: meta.OriginCache, Created: at(1)})
	pushed, err := x.PushedRepos(ctx())
	same(t, "pushed repositories after reopen", pushed, err, []string{"team/app"})
}
