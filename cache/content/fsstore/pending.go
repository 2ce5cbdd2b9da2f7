package fsstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

var _ content.PendingIngester = (*Store)(nil)

// IngestPending implements content.PendingIngester: the bytes go to a temp
// file in ingest/ (removed at start if a crash left it), hashed as written.
func (s *Store) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, alg)
	}
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	name := filepath.Join(s.ingestDir(), "pending-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("fsstore: pending ingest: %w", err)
	}
	return &pending{s: s, f: f, name: name, alg: alg, h: alg.Hash()}, nil
}

type pending struct {
	s         *Store
	f         *os.File
	name      string
	alg       digest.Algorithm
	h         hash.Hash
	n         int64
	committed digest.Digest
	failed    bool
	closed    bool
}

func (p *pending) Write(b []byte) (int, error) {
	if p.closed || p.failed || p.committed != "" {
		return 0, content.ErrClosed
	}
	n, err := p.f.WriteAt(b, p.n)
	p.h.Write(b[:n])
	p.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("fsstore: pending write: %w", err)
	}
	return n, nil
}

func (p *pending) Written() int64 { return p.n }

func (p *pending) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	if p.closed || p.failed {
		return content.Info{}, content.ErrClosed
	}
	if err := content.ValidateDigest(d); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return content.Info{}, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, d)
		}
		return content.Info{}, fmt.Errorf("fsstore: commit %q: %w", d, err)
	}
	if p.committed != "" && p.committed != d {
		return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: p.committed, WantSize: -1, GotSize: p.n}
	}
	if p.committed == "" {
		got, err := p.digest(ctx, d.Algorithm())
		if err != nil {
			return content.Info{}, err
		}
		if got != d {
			p.failed = true
			return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: got, WantSize: -1, GotSize: p.n}
		}
		if err := p.commit(d); err != nil {
			return content.Info{}, err
		}
	}
	fi, err := p.f.Stat() // the committed file, even if already deleted again
	if err != nil {
		return content.Info{}, fmt.Errorf("fsstore: stat %s: %w", d, err)
	}
	return content.Info{Digest: d, Size: p.n, ModTime: fi.ModTime()}, nil
}

// digest is the bytes' digest with alg: from the running hash, or by
// reading the file back for another algorithm.
func (p *pending) digest(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	if alg == p.alg {
		return digest.NewDigest(alg, p.h), nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	h := alg.Hash()
	if _, err := io.Copy(h, io.NewSectionReader(p.f, 0, p.n)); err != nil {
		return "", fmt.Errorf("fsstore: rehash: %w", err)
	}
	return digest.NewDigest(alg, h), nil
}

func (p *pending) commit(d digest.Digest) error {
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("fsstore: sync %s: %w", d, err)
	}
	final := p.s.path(d)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	// Replace an identical blob committed meanwhile rather than trusting it:
	// a collector may be deleting it at this moment (see ingest.Commit).
	if err := os.Rename(p.name, final); err != nil {
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
	err := p.f.Close()
	if p.committed == "" {
		if rerr := os.Remove(p.name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("fsstore: close pending: %w", err)
	}
	return nil
}
