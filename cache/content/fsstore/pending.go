package fsstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/internal/blobfile"
	"github.com/opencontainers/go-digest"
)

var _ content.PendingIngester = (*Store)(nil)

// IngestPending implements content.PendingIngester: the bytes go to a temp
// file in ingest/ (removed at start if a crash left it), hashed as written.
func (s *Store) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, alg)
	}
	bf, err := blobfile.Create(s.ingestDir(), "pending-", alg)
	if err != nil {
		return nil, fmt.Errorf("fsstore: pending ingest: %w", err)
	}
	return &pending{s: s, bf: bf}, nil
}

type pending struct {
	s         *Store
	bf        *blobfile.File
	committed digest.Digest
	failed    bool
	closed    bool
}

func (p *pending) Write(b []byte) (int, error) {
	if p.closed || p.failed || p.committed != "" {
		return 0, content.ErrClosed
	}
	n, err := p.bf.Write(b)
	if err != nil {
		return n, fmt.Errorf("fsstore: pending write: %w", err)
	}
	return n, nil
}

func (p *pending) Written() int64 { return p.bf.Written() }

func (p *pending) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	if p.closed || p.failed {
		return content.Info{}, content.ErrClosed
	}
	if err := content.ValidateWrite(d); err != nil {
		return content.Info{}, fmt.Errorf("fsstore: commit %q: %w", d, err)
	}
	n := p.bf.Written()
	if p.committed != "" && p.committed != d {
		return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: p.committed, WantSize: -1, GotSize: n}
	}
	if p.committed == "" {
		if err := p.bf.Verify(ctx, d, -1); err != nil {
			var me *content.MismatchError
			p.failed = errors.As(err, &me)
			return content.Info{}, err
		}
		if err := p.commit(d); err != nil {
			return content.Info{}, err
		}
	}
	fi, err := p.bf.F.Stat() // the committed file, even if already deleted again
	if err != nil {
		return content.Info{}, fmt.Errorf("fsstore: stat %s: %w", d, err)
	}
	return content.Info{Digest: d, Size: n, ModTime: fi.ModTime()}, nil
}

func (p *pending) commit(d digest.Digest) error {
	if err := p.bf.F.Sync(); err != nil {
		return fmt.Errorf("fsstore: sync %s: %w", d, err)
	}
	final := p.s.path(d)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	// Replace an identical blob committed meanwhile rather than trusting it:
	// a collector may be deleting it at this moment (see ingest.Commit).
	if err := os.Rename(p.bf.Name, final); err != nil {
		return fmt.Errorf("fsstore: commit %s: %w", d, err)
	} else if err := syncDir(filepath.Dir(final)); err != nil {
		return err
	}
	p.committed = d
	return nil
}

func (p *pending) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.bf.Close(p.committed == ""); err != nil {
		return fmt.Errorf("fsstore: close pending: %w", err)
	}
	return nil
}
