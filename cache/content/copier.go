package content

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
)

// ErrNoCopy means the backend refused to copy an object inside itself (a
// credential that may write but not copy, a copy that failed): the caller
// sends the bytes through an Ingest instead.
var ErrNoCopy = errors.New("content: the backend cannot copy the object")

// CopySource names an object of a store's backend that is not a blob of
// the store (an upload's bytes in an object store's upload area).
type CopySource struct {
	// Name is the object's name in the backend.
	Name string
	// Version is the object's version (an ETag) whose bytes the caller
	// verified; the copy fails if the object changed since.
	Version string
}

// Copier is an optional ability of a Store whose backend keeps other
// objects beside the blobs: it commits a blob from one of them inside the
// backend, without the bytes passing through this process.
type Copier interface {
	// Copy commits the blob d from src, which holds exactly size bytes
	// that the caller hashed to d as they were written: Copy trusts that
	// and does not read them. A blob d already committed is success. A
	// reader never sees d with other bytes: a copy that fails leaves no
	// blob d behind. Errors wrap ErrNotFound if src is missing or not at
	// src.Version any more, ErrNoCopy if the backend refused the copy.
	Copy(ctx context.Context, d digest.Digest, size int64, src CopySource) (Info, error)
}
