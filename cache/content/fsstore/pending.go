package fsstore

import (
	"context"
	"fmt"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/internal/blobfile"
	"github.com/opencontainers/go-digest"
)

var _ content.PendingIngester = (*Store)(nil)

// IngestPending implements content.PendingIngester: the bytes go to a temp
// file in ingest/ (removed at start if a crash left it), hashed as written;
// Commit verifies them and renames the file into place.
func (s *Store) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, alg)
	}
	bf, err := blobfile.Create(s.ingestDir(), "pending-", alg)
	if err != nil {
		return nil, fmt.Errorf("fsstore: pending ingest: %w", err)
	}
	return blobfile.NewPending(bf, "fsstore", true, s.publish), nil
}
