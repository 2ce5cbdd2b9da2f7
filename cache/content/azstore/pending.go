package azstore

import (
	"context"
	"fmt"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/internal/blobfile"
	"github.com/opencontainers/go-digest"
)

// IngestPending implements content.PendingIngester: the bytes go to a
// local file, hashed as written; the blob's name is known only at Commit,
// which then uploads the verified file.
func (s *Store) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, alg)
	}
	bf, err := blobfile.Create(s.ingestDir, "pending-", alg)
	if err != nil {
		return nil, fmt.Errorf("azstore: pending ingest: %w", err)
	}
	return blobfile.NewPending(bf, "azstore", false, s.publishPending), nil
}

// publishPending uploads the verified bytes of bf as the blob d and links
// the file into the spool.
func (s *Store) publishPending(ctx context.Context, bf *blobfile.File, d digest.Digest) (content.Info, error) {
	n := bf.Written()
	mod, err := s.put(ctx, d, bf.F, n, nil)
	if err != nil {
		return content.Info{}, err
	}
	info := content.Info{Digest: d, Size: n, ModTime: mod}
	s.adopt(bf, info)
	return info, nil
}
