package azstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// localIngest starts a local ingest of a 100,000-byte blob of seed on a
// new container, its store staging blocks of 16 KiB, its requests
// recorded from here on.
func localIngest(t *testing.T, e *env, seed byte) (*Store, *recorder, content.LocalIngest, []byte, digest.Digest) {
	t.Helper()
	rec := &recorder{}
	s := newStore(t, e.container(t, rec), WithBlockSize(16<<10))
	rec.reset() // the container's creation
	b, d := testBlob(100_000, seed)
	w, err := s.IngestLocal(context.Background(), d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return s, rec, w, b, d
}

// A local ingest writes nothing to the container: its commit verifies the
// bytes and spools them for this replica alone. A wrong body commits
// nothing anywhere.
func testLocalIngest(t *testing.T, e *env) {
	ctx := context.Background()
	s, rec, w, b, d := localIngest(t, e, 11)
	w.Write(b)
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.reqs); n != 0 {
		t.Fatalf("a local ingest sent %d requests (%v), want 0", n, rec.reqs)
	}
	rc, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if _, ok := rc.(*os.File); !ok || !bytes.Equal(got, b) {
		t.Fatalf("Open after a local commit: %T, %d bytes", rc, len(got))
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("the container has a locally committed blob: %v", err)
	}

	bad, err := s.IngestLocal(ctx, d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write(append(bytes.Clone(b[:len(b)-1]), b[len(b)-1]^1))
	var me *content.MismatchError
	if _, err := bad.Commit(ctx); !errors.As(err, &me) {
		t.Fatalf("commit of wrong bytes: %v", err)
	}
}

// Sharing a local ingest mid-way stages the bytes it has and those that
// follow, and its commit publishes the blob create-only, as an ingest of
// the container does; another replica reads it.
func testLocalIngestShared(t *testing.T, e *env) {
	ctx := context.Background()
	s, rec, w, b, d := localIngest(t, e, 12)
	w.Write(b[:40_000])
	if n := len(rec.reqs); n != 0 {
		t.Fatalf("before Share: %d requests (%v)", n, rec.reqs)
	}
	if err := w.Share(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Share(ctx); err != nil {
		t.Fatalf("second Share: %v", err)
	}
	w.Write(b[40_000:])
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stagedAndCommitted(t, rec, s, d, b)
	if err := w.Share(ctx); !errors.Is(err, content.ErrClosed) {
		t.Fatalf("Share after Commit: %v, want ErrClosed", err)
	}
}
