// Package content is the contract of airlock's content store: immutable
// blobs addressed by digest. The filesystem store (fsstore) is the embedded
// default; an object-storage backend can implement the same interfaces.
//
// Serving a blob with the kernel's sendfile path is an optional ability: a
// store whose Open returns an *os.File gets it for free from net/http.
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound means no committed blob has the digest.
	ErrNotFound = errors.New("content: blob not found")
	// ErrUnsupportedDigest means the digest's algorithm is not available.
	ErrUnsupportedDigest = errors.New("content: unsupported digest algorithm")
	// ErrClosed means an ingest was used after Close.
	ErrClosed = errors.New("content: ingest closed")
	// ErrNoRoom means a store with a quota cannot take the bytes without
	// going over it, even after evicting what it may evict. Nothing was
	// written past the quota.
	ErrNoRoom = errors.New("content: no room within the store's quota")
)

// MismatchError says the written bytes do not match the expected size or
// digest. Nothing is committed when it is returned.
type MismatchError struct {
	WantDigest, GotDigest digest.Digest
	WantSize, GotSize     int64
}

func (e *MismatchError) Error() string {
	if e.WantSize >= 0 && e.WantSize != e.GotSize {
		return fmt.Sprintf("content: size mismatch for %s: want %d bytes, got %d", e.WantDigest, e.WantSize, e.GotSize)
	}
	return fmt.Sprintf("content: digest mismatch: want %s, got %s", e.WantDigest, e.GotDigest)
}

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Provider reads committed blobs.
type Provider interface {
	// Open returns a reader of the whole blob and its Info. It returns an
	// error wrapping ErrNotFound if the blob is not committed.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, Info, error)
	// Stat returns the blob's Info, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (Info, error)
}

// Ingester starts writes of new blobs.
type Ingester interface {
	// Ingest starts writing the blob d. size is the expected size, or -1 if
	// unknown. It returns an error wrapping ErrUnsupportedDigest for an
	// algorithm the store cannot verify.
	Ingest(ctx context.Context, d digest.Digest, size int64) (Ingest, error)
}

// Ingest is one blob being written. Bytes are hashed as they arrive. The
// bytes written so far can be read back with ReadAt until Close, also after
// Commit, so readers can follow a fill while it runs.
type Ingest interface {
	io.Writer
	io.ReaderAt
	// Written is the number of bytes written so far.
	Written() int64
	// Commit checks size and digest and makes the blob visible atomically.
	// It returns a *MismatchError if they differ, and succeeds if an
	// identical blob was committed meanwhile. Commit does not Close.
	Commit(ctx context.Context) (Info, error)
	// Close releases the ingest; without a Commit the bytes are discarded.
	Close() error
}

// Deleter removes committed blobs.
type Deleter interface {
	// Delete removes the blob; it returns an error wrapping ErrNotFound if
	// there is none.
	Delete(ctx context.Context, d digest.Digest) error
}

// Walker lists committed blobs, for garbage collection and checks.
type Walker interface {
	// Walk calls fn for each committed blob, in no particular order, and
	// stops at the first error fn returns.
	Walk(ctx context.Context, fn func(Info) error) error
}

// Store is what the cache needs of a content store.
type Store interface {
	Provider
	Ingester
	Deleter
}

// ReadAll reads a whole committed blob; meant for small blobs (manifests).
func ReadAll(ctx context.Context, p Provider, d digest.Digest) ([]byte, error) {
	rc, _, err := p.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("content: read %s: %w", d, err)
	}
	return b, nil
}

// WriteBlob ingests and commits b under d, verifying it.
func WriteBlob(ctx context.Context, in Ingester, d digest.Digest, b []byte) (Info, error) {
	w, err := in.Ingest(ctx, d, int64(len(b)))
	if err != nil {
		return Info{}, err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return Info{}, fmt.Errorf("content: write %s: %w", d, err)
	}
	return w.Commit(ctx)
}
