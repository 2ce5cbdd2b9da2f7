package check_test

import (
	"context"
	"errors"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/check"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// countingStore counts blobs opened (read), to show the check reads only
// suspects.
type countingStore struct {
	*fsstore.Store
	opens atomic.Int64
}

func (s *countingStore) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, content.Info, error) {
	s.opens.Add(1)
	return s.Store.Open(ctx, d)
}

func TestCheckDropsWhatDoesNotVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	fs, err := fsstore.New(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: fs}
	index, err := badgermeta.Open(filepath.Join(dir, "meta"), zap.NewNop(), badgermeta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer index.Close()
	now := time.Now()
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if _, err := content.WriteBlob(ctx, fs, d, b); err != nil {
			t.Fatal(err)
		}
		return d
	}
	link := func(repo string, d digest.Digest, size int) {
		if err := index.LinkBlob(context.Background(), repo, d, meta.Blob{Size: int64(size), Origin: meta.OriginCache, Added: now}); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(repo, tag string, d digest.Digest, size int, refs ...digest.Digest) {
		mt := "application/vnd.oci.image.manifest.v1+json"
		if err := index.PutManifest(context.Background(), repo, d, meta.Manifest{MediaType: mt, Size: int64(size), Refs: refs, Origin: meta.OriginCache, Added: now},
			tag, meta.Tag{Digest: d, MediaType: mt, Size: int64(size), FetchedAt: now, Origin: meta.OriginCache}); err != nil {
			t.Fatal(err)
		}
	}
	// A good image.
	layer := []byte("good layer bytes")
	ld := put(layer)
	link("good", ld, len(layer))
	man := []byte(`{"good":"manifest"}`)
	md := put(man)
	manifest("good", "v1", md, len(man), ld)
	// A manifest whose file is gone (its tag goes with it).
	lost := []byte(`{"lost":"manifest"}`)
	lostD := digest.FromBytes(lost)
	manifest("lost", "v1", lostD, len(lost))
	// A blob link whose file is gone.
	link("good", digest.FromString("never stored"), 12)
	// A truncated file: its size disagrees, it is re-hashed and deleted.
	bad := []byte("this layer will be truncated on disk")
	badD := put(bad)
	link("bad", badD, len(bad))
	p := filepath.Join(dir, "content", "blobs", "sha256", badD.Encoded()[:2], badD.Encoded())
	if err := os.Truncate(p, 5); err != nil {
		t.Fatal(err)
	}

	rep, err := check.Run(ctx, store, index, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	want := check.Report{Blobs: 3, Manifests: 2, BlobLinks: 3, Tags: 2, DroppedManifests: 1, DroppedBlobLinks: 2, DroppedTags: 1, Rehashed: 1, Corrupt: 1}
	rep.Bytes, rep.Took = 0, 0
	if rep != want {
		t.Fatalf("report\n got %+v\nwant %+v", rep, want)
	}
	if n := store.opens.Load(); n != 1 {
		t.Fatalf("the check read %d blobs; only the suspect should be read", n)
	}
	if _, err := index.Tag(context.Background(), "lost", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("tag of a lost manifest: %v", err)
	}
	if _, err := fs.Stat(ctx, badD); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("corrupt file kept: %v", err)
	}
	if _, err := index.Tag(context.Background(), "good", "v1"); err != nil {
		t.Fatalf("good tag: %v", err)
	}
	if _, err := index.Blob(context.Background(), "good", ld); err != nil {
		t.Fatalf("good blob link: %v", err)
	}
	rep, err = check.Run(ctx, store, index, zap.NewNop())
	if err != nil || rep.Dropped() != 0 || rep.Corrupt != 0 {
		t.Fatalf("second check should find nothing: %+v %v", rep, err)
	}
}
