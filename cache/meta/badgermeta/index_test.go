package badgermeta

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/metatest"
	"github.com/airlock/airlock/internal/leaktest"
	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestSuite(t *testing.T) {
	t.Parallel()
	metatest.Run(t, func(t *testing.T) metatest.Open {
		dir := t.TempDir()
		return func(t *testing.T) metatest.Index {
			x, err := Open(dir, zap.NewNop(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
	})
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

// The read cache never serves a record after a write changed or removed it.
func TestReadCacheFollowsWrites(t *testing.T) {
	t.Parallel()
	x := inMemory(t)
	ctx := context.Background()
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	x.PutTag(ctx, "r", "v1", meta.Tag{Digest: d1, Origin: meta.OriginCache})
	for range 2 { // the second read is served from the cache
		if got, _ := x.Tag(ctx, "r", "v1"); got.Digest != d1 {
			t.Fatalf("tag %s", got.Digest)
		}
	}
	x.PutTag(ctx, "r", "v1", meta.Tag{Digest: d2, Origin: meta.OriginCache})
	if got, _ := x.Tag(ctx, "r", "v1"); got.Digest != d2 {
		t.Fatalf("moved tag read as %s", got.Digest)
	}
	x.LinkBlob(ctx, "r", d1, meta.Blob{Size: 1, Origin: meta.OriginCache})
	x.Blob(ctx, "r", d1)
	if err := x.UnlinkBlob(ctx, "r", d1); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Blob(ctx, "r", d1); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("unlinked blob still found: %v", err)
	}
	x.PutManifest(ctx, "r", d2, meta.Manifest{Size: 5, Origin: meta.OriginCache}, "", meta.Tag{})
	x.Manifest(ctx, "r", d2)
	if err := x.Remove(ctx, meta.Removal{Repo: "r", Manifests: []digest.Digest{d2}, Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Manifest(ctx, "r", d2); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("removed manifest still found: %v", err)
	}
	if _, err := x.Tag(ctx, "r", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("removed tag still found: %v", err)
	}
}
