package metatest

import (
	"slices"
	"testing"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// A tag keeps its target and fetch time; revalidation moves the fetch
// time, a moved tag its digest; tags are per repository.
func testTags(t *testing.T, x Index) {
	d1, d2 := dg("one"), dg("two")
	_, err := x.Tag(ctx(), "a/b", "v1")
	notFound(t, "tag before any write", err)
	first := tagOf(d1, meta.OriginCache, at(0))
	must(t, "put tag", x.PutTag(ctx(), "a/b", "v1", first))
	got, err := x.Tag(ctx(), "a/b", "v1")
	same(t, "tag", got, err, first)

	revalidated := first
	revalidated.FetchedAt = at(5)
	must(t, "refresh tag", x.PutTag(ctx(), "a/b", "v1", revalidated))
	got, err = x.Tag(ctx(), "a/b", "v1")
	same(t, "revalidated tag", got, err, revalidated)

	moved := tagOf(d2, meta.OriginCache, at(10))
	must(t, "move tag", x.PutTag(ctx(), "a/b", "v1", moved))
	got, err = x.Tag(ctx(), "a/b", "v1")
	same(t, "moved tag", got, err, moved)

	for _, other := range [][2]string{{"a/c", "v1"}, {"a", "b/v1"}, {"a/b/v1", ""}, {"a/b", "v2"}} {
		_, err := x.Tag(ctx(), other[0], other[1])
		notFound(t, "tag "+other[0]+":"+other[1], err)
	}
	must(t, "delete tag", x.DeleteTag(ctx(), "a/b", "v1"))
	_, err = x.Tag(ctx(), "a/b", "v1")
	notFound(t, "deleted tag", err)
	notFound(t, "second delete", x.DeleteTag(ctx(), "a/b", "v1"))
}

// A manifest keeps every field (children, subject, annotations), is linked
// per repository, and PutManifest sets its tag in the same write.
func testManifests(t *testing.T, x Index) {
	child1, child2, subject := dg("amd64"), dg("arm64"), dg("subject")
	idx := dg("index")
	_, err := x.Manifest(ctx(), "r", idx)
	notFound(t, "manifest before any write", err)
	for _, c := range []string{"amd64", "arm64"} {
		must(t, "put child", x.PutManifest(ctx(), "r", dg(c), manifestOf(meta.OriginCache, at(0), dg(c+"/layer")), "", meta.Tag{}))
	}
	rec := meta.Manifest{
		MediaType: "application/vnd.oci.image.index.v1+json", Size: 999,
		ArtifactType: "application/vnd.example", Subject: subject,
		Annotations: map[string]string{"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
		Refs:        []digest.Digest{child1, child2}, Origin: meta.OriginPush, Added: at(1),
	}
	tag := tagOf(idx, meta.OriginPush, at(1))
	tag.MediaType, tag.Size = rec.MediaType, rec.Size
	must(t, "put index with tag", x.PutManifest(ctx(), "r", idx, rec, "latest", tag))
	got, err := x.Manifest(ctx(), "r", idx)
	same(t, "index", got, err, rec)
	gt, err := x.Tag(ctx(), "r", "latest")
	same(t, "tag set with the manifest", gt, err, tag)
	for _, c := range []digest.Digest{child1, child2} {
		if _, err := x.Manifest(ctx(), "r", c); err != nil {
			t.Fatalf("child %s: %v", c, err)
		}
	}
	_, err = x.Manifest(ctx(), "r2", idx)
	notFound(t, "manifest of another repository", err)

	// DeleteManifest takes the manifest only; its tag stays.
	must(t, "delete manifest", x.DeleteManifest(ctx(), "r", idx))
	_, err = x.Manifest(ctx(), "r", idx)
	notFound(t, "deleted manifest", err)
	if _, err := x.Tag(ctx(), "r", "latest"); err != nil {
		t.Fatalf("DeleteManifest removed the tag too: %v", err)
	}
	notFound(t, "second delete", x.DeleteManifest(ctx(), "r", idx))
}

// RemoveManifest takes the manifest's tags with it, and only its own, in
// its own repository.
func testRemoveManifest(t *testing.T, x Index) {
	d1, d2 := dg("one"), dg("two")
	put := func(repo string, d digest.Digest, tag string, o meta.Origin) {
		t.Helper()
		must(t, "put manifest", x.PutManifest(ctx(), repo, d, manifestOf(o, at(0)), tag, tagOf(d, o, at(0))))
	}
	put("team/app", d1, "a", meta.OriginPush)
	put("team/app", d1, "b", meta.OriginPush)
	put("team/app", d2, "c", meta.OriginPush)
	put("team/app-other", d1, "a", meta.OriginPush)
	put("cache/repo", d1, "a", meta.OriginCache)
	removed, err := x.RemoveManifest(ctx(), "team/app", d1)
	slices.Sort(removed)
	same(t, "removed tags", removed, err, []string{"a", "b"})
	tags, _, err := x.Tags(ctx(), "team/app", "", 0)
	same(t, "tags left", tags, err, []string{"c"})
	_, err = x.Manifest(ctx(), "team/app", d1)
	notFound(t, "removed manifest", err)
	for _, r := range []string{"team/app-other", "cache/repo"} {
		if _, err := x.Tag(ctx(), r, "a"); err != nil {
			t.Fatalf("a tag of %s went too: %v", r, err)
		}
	}
	_, err = x.RemoveManifest(ctx(), "team/app", d1)
	notFound(t, "second remove", err)
	removed, err = x.RemoveManifest(ctx(), "team/app", d2)
	same(t, "remove the last", removed, err, []string{"c"})
	pushed, err := x.PushedRepos(ctx())
	same(t, "pushed repositories (emptied ones stay)", pushed, err, []string{"team/app", "team/app-other"})
}

// Blob links are per repository and keep size, origin and time.
func testBlobLinks(t *testing.T, x Index) {
	d := dg("layer")
	_, err := x.Blob(ctx(), "r", d)
	notFound(t, "blob before any link", err)
	b := meta.Blob{Size: 12345, Origin: meta.OriginCache, Added: at(2)}
	must(t, "link", x.LinkBlob(ctx(), "r", d, b))
	got, err := x.Blob(ctx(), "r", d)
	same(t, "blob", got, err, b)
	_, err = x.Blob(ctx(), "r2", d)
	notFound(t, "blob links are per repository", err)
	b2 := meta.Blob{Size: 12345, Origin: meta.OriginPush, Added: at(3)}
	must(t, "relink", x.LinkBlob(ctx(), "r", d, b2))
	got, err = x.Blob(ctx(), "r", d)
	same(t, "relinked blob", got, err, b2)
	must(t, "unlink", x.UnlinkBlob(ctx(), "r", d))
	_, err = x.Blob(ctx(), "r", d)
	notFound(t, "unlinked blob", err)
	notFound(t, "second unlink", x.UnlinkBlob(ctx(), "r", d))
}

// A repository is recorded by its first content, with its origin; pushed
// content makes a cached repository a pushed one for good.
func testRepos(t *testing.T, x Index) {
	_, err := x.Repo(ctx(), "cached")
	notFound(t, "repository before any content", err)
	must(t, "cached tag", x.PutTag(ctx(), "cached", "v1", tagOf(dg("x"), meta.OriginCache, at(1))))
	r, err := x.Repo(ctx(), "cached")
	same(t, "cached repository", r, err, meta.Repo{Origin: meta.OriginCache, Created: at(1)})

	must(t, "pushed blob", x.LinkBlob(ctx(), "pushed", dg("b"), meta.Blob{Size: 1, Origin: meta.OriginPush, Added: at(2)}))
	must(t, "cached blob in the pushed repository", x.LinkBlob(ctx(), "pushed", dg("c"), meta.Blob{Size: 1, Origin: meta.OriginCache, Added: at(3)}))
	r, err = x.Repo(ctx(), "pushed")
	same(t, "pushed repository", r, err, meta.Repo{Origin: meta.OriginPush, Created: at(2)})

	must(t, "push into the cached repository", x.PutManifest(ctx(), "cached", dg("m"), manifestOf(meta.OriginPush, at(4)), "", meta.Tag{}))
	r, err = x.Repo(ctx(), "cached")
	same(t, "cached repository after a push", r, err, meta.Repo{Origin: meta.OriginPush, Created: at(1)})

	must(t, "another cached repository", x.LinkBlob(ctx(), "other", dg("b"), meta.Blob{Size: 1, Origin: meta.OriginCache, Added: at(5)}))
	pushed, err := x.PushedRepos(ctx())
	same(t, "pushed repositories", pushed, err, []string{"cached", "pushed"})
}

// Cached upstream referrers keep body, media type and fetch time, per
// repository and subject.
func testReferrers(t *testing.T, x Index) {
	d := dg("subject")
	_, err := x.Referrers(ctx(), "r", d)
	notFound(t, "referrers before any write", err)
	r := meta.Referrers{Body: []byte(`{"schemaVersion":2,"manifests":[]}`), MediaType: "application/vnd.oci.image.index.v1+json", FetchedAt: at(1)}
	must(t, "put", x.PutReferrers(ctx(), "r", d, r))
	got, err := x.Referrers(ctx(), "r", d)
	same(t, "referrers", got, err, r)
	_, err = x.Referrers(ctx(), "r2", d)
	notFound(t, "referrers of another repository", err)
	_, err = x.Referrers(ctx(), "r", dg("other"))
	notFound(t, "referrers of another subject", err)
	r2 := meta.Referrers{Body: []byte(`{"schemaVersion":2,"manifests":[{}]}`), MediaType: r.MediaType, FetchedAt: at(9)}
	must(t, "replace", x.PutReferrers(ctx(), "r", d, r2))
	got, err = x.Referrers(ctx(), "r", d)
	same(t, "replaced referrers", got, err, r2)
}
