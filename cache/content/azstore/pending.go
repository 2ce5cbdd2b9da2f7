package azstore

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// IngestPending implements content.PendingIngester: the bytes go to a
// local file, hashed as written; the blob's name is known only at Commit,
// which then uploads the verified file.
func (s *Store) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, alg)
	}
	f, tmp, err := s.tempFile("pending-")
	if err != nil {
		return nil, err
	}
	return &pending{s: s, f: f, tmp: tmp, alg: alg, h: alg.Hash()}, nil
}

type pending struct {
	s         *Store
	f         *os.File
	tmp       string
	alg       digest.Algorithm
	h         hash.Hash
	n         int64
	committed content.Info
	failed    bool
	closed    bool
}

func (p *pending) Write(b []byte) (int, error) {
	if p.closed || p.failed || p.committed.Digest != "" {
		return 0, content.ErrClosed
	}
	n, err := p.f.WriteAt(b, p.n)
	p.h.Write(b[:n])
	p.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("azstore: pending write: %w", err)
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
		return content.Info{}, fmt.Errorf("azstore: commit %q: %w", d, err)
	}
	if c := p.committed.Digest; c != "" {
		if c != d {
			return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: c, WantSize: -1, GotSize: p.n}
		}
		return p.committed, nil
	}
	got, err := p.digest(ctx, d.Algorithm())
	if err != nil {
		return content.Info{}, err
	}
	if got != d {
		p.failed = true
		return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: got, WantSize: -1, GotSize: p.n}
	}
	mod, err := p.s.put(ctx, d, p.f, p.n, nil)
	if err != nil {
		return content.Info{}, err
	}
	p.committed = content.Info{Digest: d, Size: p.n, ModTime: mod}
	p.s.adopt(p.tmp, p.committed)
	return p.committed, nil
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
		return "", fmt.Errorf("azstore: rehash: %w", err)
	}
	return digest.NewDigest(alg, h), nil
}

func (p *pending) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.f.Close()
	if rerr := os.Remove(p.tmp); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("azstore: close pending: %w", err)
	}
	return nil
}
