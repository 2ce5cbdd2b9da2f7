package badgermeta

import (
	"context"
	"github.com/dgraph-io/badger/v4"

	"errors"
	"fmt"
	"github.com/airlock/airlock/cache/meta"
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
	if _, err := x.Tag(context.Background(), "a/b", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("want meta.ErrNotFound, got %v", err)
	}
	tag := meta.Tag{Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 10, FetchedAt: now, Origin: meta.OriginCache}
	m := meta.Manifest{MediaType: tag.MediaType, Size: 10, Refs: []digest.Digest{digest.FromString("l")}, Origin: meta.OriginCache, Added: now}
	if err := x.PutManifest(context.Background(), "a/b", d, m, "v1", tag); err != nil {
		t.Fatal(err)
	}
	if err := x.LinkBlob(context.Background(), "a/b", digest.FromString("l"), meta.Blob{Size: 1, Origin: meta.OriginCache, Added: now}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = open(t, dir)
	defer x.Close()
	got, err := x.Tag(context.Background(), "a/b", "v1")
	if err != nil || !reflect.DeepEqual(got, tag) {
		t.Fatalf("tag after reopen: %+v %v", got, err)
	}
	gm, err := x.Manifest(context.Background(), "a/b", d)
	if err != nil || !reflect.DeepEqual(gm, m) {
		t.Fatalf("manifest after reopen: %+v %v", gm, err)
	}
	if _, err := x.Blob(context.Background(), "a/b", digest.FromString("l")); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Blob(context.Background(), "a/c", digest.FromString("l")); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("blob links are per repository: %v", err)
	}
	r, err := x.Repo(context.Background(), "a/b")
	if err != nil || r.Origin != meta.OriginCache {
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
		if err := x.PutTag(context.Background(), "r", fmt.Sprintf("t%d", i), meta.Tag{Origin: meta.OriginPush}); err != nil {
			t.Fatal(err)
		}
	}
	// A tag of a repository whose name extends "r" must not leak in.
	x.PutTag(context.Background(), "rr", "zz", meta.Tag{Origin: meta.OriginCache})
	x.PutTag(context.Background(), "r/sub", "zz", meta.Tag{Origin: meta.OriginCache})
	all, more, _ := x.Tags(context.Background(), "r", "", 0)
	if !reflect.DeepEqual(all, []string{"t0", "t1", "t2", "t3", "t4"}) || more {
		t.Fatalf("all: %v %v", all, more)
	}
	page, more, _ := x.Tags(context.Background(), "r", "t1", 2)
	if !reflect.DeepEqual(page, []string{"t2", "t3"}) || !more {
		t.Fatalf("page: %v %v", page, more)
	}
	page, more, _ = x.Tags(context.Background(), "r", "t3", 2)
	if !reflect.DeepEqual(page, []string{"t4"}) || more {
		t.Fatalf("last page: %v %v", page, more)
	}
	repos, _, _ := x.Repos(context.Background(), "", 0)
	if !reflect.DeepEqual(repos, []string{"r", "r/sub", "rr"}) {
		t.Fatalf("repos %v", repos)
	}
	pushed, _ := x.PushedRepos(context.Background())
	if !reflect.DeepEqual(pushed, []string{"r"}) {
		t.Fatalf("pushed %v", pushed)
	}
	if err := x.DeleteTag(context.Background(), "r", "t0"); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteTag(context.Background(), "r", "t0"); !errors.Is(err, meta.ErrNotFound) {
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
	x.PutTag(context.Background(), "r", "v1", meta.Tag{Digest: d1, Origin: meta.OriginCache})
	for range 2 { // the second read is served from the cache
		if got, _ := x.Tag(context.Background(), "r", "v1"); got.Digest != d1 {
			t.Fatalf("tag %s", got.Digest)
		}
	}
	x.PutTag(context.Background(), "r", "v1", meta.Tag{Digest: d2, Origin: meta.OriginCache})
	if got, _ := x.Tag(context.Background(), "r", "v1"); got.Digest != d2 {
		t.Fatalf("moved tag read as %s", got.Digest)
	}
	x.LinkBlob(context.Background(), "r", d1, meta.Blob{Size: 1, Origin: meta.OriginCache})
	x.Blob(context.Background(), "r", d1)
	if err := x.UnlinkBlob(context.Background(), "r", d1); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Blob(context.Background(), "r", d1); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("unlinked blob still found: %v", err)
	}
	x.PutManifest(context.Background(), "r", d2, meta.Manifest{Size: 5, Origin: meta.OriginCache}, "", meta.Tag{})
	x.Manifest(context.Background(), "r", d2)
	if err := x.Remove(context.Background(), meta.Removal{Repo: "r", Manifests: []digest.Digest{d2}, Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Manifest(context.Background(), "r", d2); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("removed manifest still found: %v", err)
	}
	if _, err := x.Tag(context.Background(), "r", "v1"); !errors.Is(err, meta.ErrNotFound) {
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
	if err := x.PutPins(context.Background(), []meta.Pin{{Ref: ref, Owner: "cluster/a"}, {Ref: ref, Owner: "cluster/b"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := x.DeletePins(context.Background(), nil, "cluster/a"); err != nil || n != 1 {
		t.Fatalf("delete cluster/a: %d %v", n, err)
	}
	ps, _ := x.Pins(context.Background())
	if len(ps) != 1 || ps[0].Ref != ref || ps[0].Owner != "cluster/b" {
		t.Fatalf("pins left: %+v", ps)
	}
	if n, _ := x.DeletePins(context.Background(), []string{ref}, ""); n != 1 {
		t.Fatalf("unpin by reference removed %d", n)
	}
}

func inMemory(t *testing.T) *Index {
	t.Helper()
	x, err := Open("", zap.NewNop(), Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// The records keep the stored form they had before the contract moved
// out of this package: keys "<kind>\x00<repo>\x00<name>", JSON values with
// short field names. A change here makes existing indexes unreadable.
func TestOnDiskFormat(t *testing.T) {
	t.Parallel()
	x := inMemory(t)
	ctx := context.Background()
	d := digest.FromString("x")
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := x.PutManifest(ctx, "a/b", d, meta.Manifest{MediaType: "mt", Size: 3, Refs: []digest.Digest{d}, Origin: meta.OriginCache, Added: at}, "v1",
		meta.Tag{Digest: d, MediaType: "mt", Size: 3, FetchedAt: at, Origin: meta.OriginCache}); err != nil {
		t.Fatal(err)
	}
	if err := x.LinkBlob(ctx, "a/b", d, meta.Blob{Size: 3, Origin: meta.OriginPush, Added: at}); err != nil {
		t.Fatal(err)
	}
	if err := x.PutPins(ctx, []meta.Pin{{Ref: "a/b:v1", Owner: "o", Added: at}}); err != nil {
		t.Fatal(err)
	}
	ts := `"2026-01-02T03:04:05.000000006Z"`
	for k, want := range map[string]string{
		"t\x00a/b\x00v1":           `{"d":"` + d.String() + `","mt":"mt","s":3,"at":` + ts + `,"o":"cache"}`,
		"m\x00a/b\x00" + string(d): `{"mt":"mt","s":3,"refs":["` + d.String() + `"],"o":"cache","t":` + ts + `}`,
		"b\x00a/b\x00" + string(d): `{"s":3,"o":"push","t":` + ts + `}`,
		"r\x00a/b":                 `{"o":"push","t":` + ts + `}`,
		"p\x00a/b:v1\x00o":         `{"o":"o","t":` + ts + `}`,
	} {
		err := x.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get([]byte(k))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error {
				if string(v) != want {
					t.Errorf("%q:\n got %s\nwant %s", k, v, want)
				}
				return nil
			})
		})
		if err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
}
