package blobfile

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// Pending is a content.Pending on a File, the bookkeeping the stores share:
// writes stop at Commit, at a failed verification and at Close; Commit
// verifies the bytes against the digest it is given and publishes them
// once; a second Commit of the same digest returns the first one's Info.
// Publishing is the store's. It is not safe for concurrent use.
type Pending struct {
	f       *File
	store   string // names the store in errors
	publish func(ctx context.Context, f *File, d digest.Digest) (content.Info, error)
	keep    bool // Close leaves a committed file's name (publish moved it)

	committed content.Info
	failed    bool
	closed    bool
}

var _ content.Pending = (*Pending)(nil)

// NewPending returns a Pending writing to f. publish makes the verified
// bytes of f the blob d and returns its Info; an error leaves the Pending
// uncommitted. store names the store in errors. With keep, Close does not
// remove f's name once committed; without it, Close always removes it.
func NewPending(f *File, store string, keep bool, publish func(ctx context.Context, f *File, d digest.Digest) (content.Info, error)) *Pending {
	return &Pending{f: f, store: store, publish: publish, keep: keep}
}

// Write appends b to the file and the hash. It returns content.ErrClosed
// after Commit, a failed verification or Close.
func (p *Pending) Write(b []byte) (int, error) {
	if p.closed || p.failed || p.committed.Digest != "" {
		return 0, content.ErrClosed
	}
	n, err := p.f.Write(b)
	if err != nil {
		return n, fmt.Errorf("%s: pending write: %w", p.store, err)
	}
	return n, nil
}

// Written is the number of bytes written so far.
func (p *Pending) Written() int64 { return p.f.Written() }

// Commit verifies the bytes against d, then publishes them as the blob d.
// It returns a *content.MismatchError if they differ (the Pending is then
// unusable) or if an earlier Commit published another digest, and
// content.ErrClosed after Close or a failed verification.
func (p *Pending) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	if p.closed || p.failed {
		return content.Info{}, content.ErrClosed
	}
	if err := content.ValidateWrite(d); err != nil {
		return content.Info{}, fmt.Errorf("%s: commit %q: %w", p.store, d, err)
	}
	if c := p.committed; c.Digest != "" {
		if c.Digest != d {
			return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: c.Digest, WantSize: -1, GotSize: c.Size}
		}
		return c, nil
	}
	if err := p.f.Verify(ctx, d, -1); err != nil {
		var me *content.MismatchError
		p.failed = errors.As(err, &me)
		return content.Info{}, err
	}
	info, err := p.publish(ctx, p.f, d)
	if err != nil {
		return content.Info{}, err
	}
	p.committed = info
	return info, nil
}

// Close releases the write and the file; without a Commit the bytes are
// discarded.
func (p *Pending) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.f.Close(!p.keep || p.committed.Digest == ""); err != nil {
		return fmt.Errorf("%s: close pending: %w", p.store, err)
	}
	return nil
}
