// Package contenttest is the shared test suite every content.Store
// implementation runs.
package contenttest

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"io"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Run runs the suite against stores made by newStore (one per subtest).
func Run(t *testing.T, newStore func(t *testing.T) content.Store) {
	t.Run("WriteOpenStatDelete", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("Mismatch", func(t *testing.T) { testMismatch(t, newStore(t)) })
	t.Run("FollowWhileWriting", func(t *testing.T) { testFollow(t, newStore(t)) })
	t.Run("ConcurrentCommit", func(t *testing.T) { testConcurrentCommit(t, newStore(t)) })
	t.Run("SHA512", func(t *testing.T) { testSHA512(t, newStore(t)) })
	t.Run("UnknownSize", func(t *testing.T) { testUnknownSize(t, newStore(t)) })
	t.Run("Pending", func(t *testing.T) { testPending(t, newStore(t)) })
}

func blob(n int) ([]byte, digest.Digest) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	return b, digest.FromBytes(b)
}

func testRoundTrip(t *testing.T, s content.Store) {
	ctx := context.Background()
	b, d := blob(100_000)
	if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Stat before write: want ErrNotFound, got %v", err)
	}
	info, err := content.WriteBlob(ctx, s, d, b)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(b)) || info.Digest != d {
		t.Fatalf("info %+v", info)
	}
	got, err := content.ReadAll(ctx, s, d)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read back: %v (equal=%v)", err, bytes.Equal(got, b))
	}
	rc, info, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Seek(50_000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	half, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(half, b[50_000:]) || info.Size != int64(len(b)) {
		t.Fatalf("seek read mismatch")
	}
	// Writing the same blob again is success.
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.Delete(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testMismatch(t *testing.T, s content.Store) {
	ctx := context.Background()
	b, d := blob(4096)
	bad := append([]byte(nil), b...)
	bad[100] ^= 0xff
	for name, tc := range map[string]struct {
		body []byte
		size int64
	}{
		"wrong bytes": {bad, int64(len(b))},
		"short":       {b[:4000], int64(len(b))},
		"wrong size":  {b, int64(len(b)) + 1},
	} {
		w, err := s.Ingest(ctx, d, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(tc.body)
		_, err = w.Commit(ctx)
		var me *content.MismatchError
		if !errors.As(err, &me) {
			t.Fatalf("%s: want MismatchError, got %v", name, err)
		}
		w.Close()
		if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("%s: a mismatched blob became visible: %v", name, err)
		}
	}
}

func testFollow(t *testing.T, s content.Store) {
	ctx := context.Background()
	b, d := blob(1 << 20)
	w, err := s.Ingest(ctx, d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(b[:1000])
	if w.Written() != 1000 {
		t.Fatalf("Written %d", w.Written())
	}
	p := make([]byte, 2000)
	n, err := w.ReadAt(p, 0)
	if n != 1000 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:n], b[:1000]) {
		t.Fatalf("ReadAt past written: n=%d err=%v", n, err)
	}
	w.Write(b[1000:])
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The written bytes stay readable after commit, until Close.
	n, err = w.ReadAt(p, int64(len(b))-2000)
	if n != 2000 || err != nil || !bytes.Equal(p, b[len(b)-2000:]) {
		t.Fatalf("ReadAt after commit: n=%d err=%v", n, err)
	}
	if _, err := s.Stat(ctx, d); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentCommit(t *testing.T, s content.Store) {
	ctx := context.Background()
	b, d := blob(64 << 10)
	var g errgroup.Group
	for range 8 {
		g.Go(func() error {
			_, err := content.WriteBlob(ctx, s, d, b)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadAll(ctx, s, d)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("after concurrent commits: %v", err)
	}
}

func testSHA512(t *testing.T, s content.Store) {
	ctx := context.Background()
	b, _ := blob(3000)
	sum := sha512.Sum512(b)
	d := digest.NewDigestFromBytes(digest.SHA512, sum[:])
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadAll(ctx, s, d)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("sha512 read back: %v", err)
	}
	if _, err := s.Ingest(ctx, digest.Digest("md5:d41d8cd98f00b204e9800998ecf8427e"), 0); !errors.Is(err, content.ErrUnsupportedDigest) {
		t.Fatalf("md5: want ErrUnsupportedDigest, got %v", err)
	}
}

func testUnknownSize(t *testing.T, s content.Store) {
	ctx := context.Background()
	b, d := blob(5000)
	w, err := s.Ingest(ctx, d, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(b)
	info, err := w.Commit(ctx)
	if err != nil || info.Size != 5000 {
		t.Fatalf("commit unknown size: %+v %v", info, err)
	}
}
