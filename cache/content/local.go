package content

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// LocalIngester is an optional ability of a store that several replicas
// share: writing a blob to this replica's own disk only, as a replica does
// with the bytes it relays from the replica filling the blob.
type LocalIngester interface {
	// IngestLocal starts writing the blob d (size as for Ingest) on this
	// replica only. It returns an error wrapping ErrUnsupportedDigest for
	// an algorithm the store cannot verify.
	IngestLocal(ctx context.Context, d digest.Digest, size int64) (LocalIngest, error)
}

// LocalIngest is an Ingest whose Commit verifies the bytes and keeps them
// on this replica (its Open may serve them while the shared store has the
// blob) without writing the shared store, until Share.
type LocalIngest interface {
	Ingest
	// Share makes the ingest write the shared store too, the bytes written
	// so far and every byte after: Commit then makes the blob visible in
	// the shared store, as an Ingest's does. It is how a replica takes
	// over a fill from the bytes it has. Sharing twice is a no-op; it
	// fails after Commit or Close.
	Share(ctx context.Context) error
}
