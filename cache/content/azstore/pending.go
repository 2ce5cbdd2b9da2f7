package azstore

import (
	"context"
	"errors"
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
	return &pending{s: s, bf: bf}, nil
}

type pending struct {
	s         *Store
	bf        *blobfile.File
	committed content.Info
	failed    bool
	closed    bool
}

func (p *pending) Write(b []byte) (int, error) {
	if p.closed || p.failed || p.committed.Digest != "" {
		return 0, content.ErrClosed
	}
	n, err := p.bf.Write(b)
	if err != nil {
		return n, fmt.Errorf("azstore: pending write: %w", err)
	}
	return n, nil
}

func (p *pending) Written() int64 { return p.bf.Written() }

// Commit verifies the bytes against d, then uploads them as the blob d.
func (p *pending) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	if p.closed || p.failed {
		return content.Info{}, content.ErrClosed
	}
	if err := content.ValidateWrite(d); err != nil {
		return content.Info{}, fmt.Errorf("azstore: commit %q: %w", d, err)
	}
	if c := p.committed; c.Digest != "" {
		if c.Digest != d {
			return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: c.Digest, WantSize: -1, GotSize: c.Size}
		}
		return c, nil
	}
	if err := p.bf.Verify(ctx, d, -1); err != nil {
		var me *content.MismatchError
		p.failed = errors.As(err, &me)
		return content.Info{}, err
	}
	n := p.bf.Written()
	mod, err := p.s.put(ctx, d, p.bf.F, n, nil)
	if err != nil {
		return content.Info{}, err
	}
	p.committed = content.Info{Digest: d, Size: n, ModTime: mod}
	p.s.adopt(p.bf, p.committed)
	return p.committed, nil
}

func (p *pending) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.bf.Close(true); err != nil {
		return fmt.Errorf("azstore: close pending: %w", err)
	}
	return nil
}
