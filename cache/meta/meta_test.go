package meta

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

func open(t *testing.T, dir string) *Index {
	t.Helper()
	x, err := Open(dir, zap.NewNop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestTagsManifestsBlobsPersist(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	x := open(t, dir)
	now := time.Now().UTC().Truncate(time.Second)
	d := digest.FromString("manifest")
	if _, err := x.Tag("a/b", "v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	tag := Tag{Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 10, FetchedAt: now, Origin: OriginCache}
	m := Manifest{MediaType: tag.MediaType, Size: 10, Refs: []digest.Digest{digest.FromString("l")}, Origin: OriginCache, Added: now}
	if err := x.PutManifest("a/b", d, m, "v1", tag); err != nil {
		t.Fatal(err)
	}
	if err := x.LinkBlob("a/b", digest.FromString("l"), Blob{Size: 1, Origin: OriginCache, Added: now}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = open(t, dir)
	defer x.Close()
	got, err := x.Tag("a/b", "v1")
	if err != nil || !reflect.DeepEqual(got, tag) {
		t.Fatalf("tag after reopen: %+v %v", got, err)
	}
	gm, err := x.Manifest("a/b", d)
	if err != nil || !reflect.DeepEqual(gm, m) {
		t.Fatalf("manifest after reopen: %+v %v", gm, err)
	}
	if _, err := x.Blob("a/b", digest.FromString("l")); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Blob("a/c", digest.FromString("l")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob links are per repository: %v", err)
	}
	r, err := x.Repo("a/b")
	if err != nil || r.Origin != OriginCache {
		t.Fatalf("repo %+v %v", r, err)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	x, err := Open("", zap.NewNop(), Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := range 5 {
		if err := x.PutTag("r", fmt.Sprintf("t%d", i), Tag{Origin: OriginPush}); err != nil {
			t.Fatal(err)
		}
	}
	// A tag of a repository whose name extends "r" must not leak in.
	x.PutTag("rr", "zz", Tag{Origin: OriginCache})
	x.PutTag("r/sub", "zz", Tag{Origin: OriginCache})
	all, more, _ := x.Tags("r", "", 0)
	if !reflect.DeepEqual(all, []string{"t0", "t1", "t2", "t3", "t4"}) || more {
		t.Fatalf("all: %v %v", all, more)
	}
	page, more, _ := x.Tags("r", "t1", 2)
	if !reflect.DeepEqual(page, []string{"t2", "t3"}) || !more {
		t.Fatalf("page: %v %v", page, more)
	}
	page, more, _ = x.Tags("r", "t3", 2)
	if !reflect.DeepEqual(page, []string{"t4"}) || more {
		t.Fatalf("last page: %v %v", page, more)
	}
	repos, _, _ := x.Repos("", 0)
	if !reflect.DeepEqual(repos, []string{"r", "r/sub", "rr"}) {
		t.Fatalf("repos %v", repos)
	}
	pushed, _ := x.PushedRepos()
	if !reflect.DeepEqual(pushed, []string{"r"}) {
		t.Fatalf("pushed %v", pushed)
	}
	if err := x.DeleteTag("r", "t0"); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteTag("r", "t0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// The read cache never serves a record after a write changed or removed it.
func TestReadCacheFollowsWrites(t *testing.T) {
	t.Parallel()
	x, err := Open("", zap.NewNop(), Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	x.PutTag("r", "v1", Tag{Digest: d1, Origin: OriginCache})
	for range 2 { // the second read is served from the cache
		if got, _ := x.Tag("r", "v1"); got.Digest != d1 {
			t.Fatalf("tag %s", got.Digest)
		}
	}
	x.PutTag("r", "v1", Tag{Digest: d2, Origin: OriginCache})
	if got, _ := x.Tag("r", "v1"); got.Digest != d2 {
		t.Fatalf("moved tag read as %s", got.Digest)
	}
	x.LinkBlob("r", d1, Blob{Size: 1, Origin: OriginCache})
	x.Blob("r", d1)
	if err := x.UnlinkBlob("r", d1); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Blob("r", d1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unlinked blob still found: %v", err)
	}
	x.PutManifest("r", d2, Manifest{Size: 5, Origin: OriginCache}, "", Tag{})
	x.Manifest("r", d2)
	if err := x.Remove(Removal{Repo: "r", Manifests: []digest.Digest{d2}, Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Manifest("r", d2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed manifest still found: %v", err)
	}
	if _, err := x.Tag("r", "v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed tag still found: %v", err)
	}
}

// Two owners may pin the same image; dropping one owner's pins keeps the
// other's.
func TestPinsPerOwner(t *testing.T) {
	t.Parallel()
	x, err := Open("", zap.NewNop(), Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ref := "aks-managed-repository/oss/kubernetes/pause:3.10"
	if err := x.PutPins([]Pin{{Ref: ref, Owner: "cluster/a"}, {Ref: ref, Owner: "cluster/b"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := x.DeletePins(nil, "cluster/a"); err != nil || n != 1 {
		t.Fatalf("delete cluster/a: %d %v", n, err)
	}
	ps, _ := x.Pins()
	if len(ps) != 1 || ps[0].Ref != ref || ps[0].Owner != "cluster/b" {
		t.Fatalf("pins left: %+v", ps)
	}
	if n, _ := x.DeletePins([]string{ref}, ""); n != 1 {
		t.Fatalf("unpin by reference removed %d", n)
	}
}
