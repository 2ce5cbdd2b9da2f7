package fsstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/contenttest"
	"github.com/opencontainers/go-digest"
)

func TestSuite(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) content.Store {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The sendfile path needs the store to hand out *os.File.
func TestOpenReturnsFile(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := []byte("hello")
	d := digest.FromBytes(b)
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatal(err)
	}
	contenttest.OpensFile(t, s, d, "a committed blob")
}

func TestCrashLeftoversRemovedAndWalk(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, _ := s.Ingest(ctx, digest.FromString("x"), -1)
	w.Write([]byte("partial")) // never committed: a crash leaves this behind
	b := []byte("committed")
	d := digest.FromBytes(b)
	content.WriteBlob(ctx, s, d, b)
	s2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "ingest"))
	if len(left) != 0 {
		t.Fatalf("ingest leftovers not removed: %d", len(left))
	}
	var seen []digest.Digest
	if err := s2.Walk(ctx, func(i content.Info) error { seen = append(seen, i.Digest); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != d {
		t.Fatalf("walk saw %v", seen)
	}
}
