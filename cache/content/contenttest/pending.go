package contenttest

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// testPending checks the optional content.PendingIngester ability: a blob
// whose digest is named only at commit, in the hashed algorithm or another.
func testPending(t *testing.T, s content.Store) {
	pi, ok := s.(content.PendingIngester)
	if !ok {
		t.Skip("store does not implement content.PendingIngester")
	}
	ctx := context.Background()
	b, d := blob(70_000)
	sum := sha512.Sum512(b)
	d512 := digest.NewDigestFromBytes(digest.SHA512, sum[:])

	for name, want := range map[string]digest.Digest{"same algorithm": d, "other algorithm": d512} {
		p, err := pi.IngestPending(ctx, digest.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		p.Write(b[:1000])
		p.Write(b[1000:])
		if p.Written() != int64(len(b)) {
			t.Fatalf("%s: Written %d", name, p.Written())
		}
		info, err := p.Commit(ctx, want)
		if err != nil || info.Size != int64(len(b)) || info.Digest != want {
			t.Fatalf("%s: commit: %+v %v", name, info, err)
		}
		p.Close()
		got, err := content.ReadAll(ctx, s, want)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: read back: %v", name, err)
		}
	}

	// A wrong digest commits nothing.
	other := digest.FromString("something else")
	p, err := pi.IngestPending(ctx, digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	p.Write(b)
	var me *content.MismatchError
	if _, err := p.Commit(ctx, other); !errors.As(err, &me) {
		t.Fatalf("wrong digest: want MismatchError, got %v", err)
	}
	p.Close()
	if _, err := s.Stat(ctx, other); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("a mismatched pending blob became visible: %v", err)
	}
	if _, err := pi.IngestPending(ctx, digest.Algorithm("md5")); !errors.Is(err, content.ErrUnsupportedDigest) {
		t.Fatalf("md5: want ErrUnsupportedDigest, got %v", err)
	}
}
