package content

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
)

// PendingIngester is an optional ability of an Ingester: writing a blob
// whose digest is known only when the last byte has arrived (a chunked
// push).
type PendingIngester interface {
	// IngestPending starts writing a blob of unknown digest and size. Bytes
	// are hashed with alg as they arrive. It returns an error wrapping
	// ErrUnsupportedDigest for an algorithm the store cannot compute.
	IngestPending(ctx context.Context, alg digest.Algorithm) (Pending, error)
}

// Pending is a blob being written whose digest is not known yet. It is
// not safe for concurrent use.
type Pending interface {
	io.Writer
	// Written is the number of bytes written so far.
	Written() int64
	// Commit checks that the bytes hash to d and makes the blob visible
	// atomically. A d of another algorithm than the one given to
	// IngestPending is checked by reading the bytes back. It returns a
	// *MismatchError if they differ (the Pending is then unusable), and
	// succeeds if an identical blob was committed meanwhile. Commit does
	// not Close.
	Commit(ctx context.Context, d digest.Digest) (Info, error)
	// Close releases the write; without a Commit the bytes are discarded.
	Close() error
}
