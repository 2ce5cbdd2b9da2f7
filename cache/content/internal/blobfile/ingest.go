package blobfile

import (
	"context"
	"fmt"
	"sync"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// Ingest is a content.Ingest on a File, the bookkeeping the stores share:
// writes stop at Commit and at Close; Commit verifies the bytes against
// the digest and size expected and publishes them once; a second Commit
// returns the first one's Info. What a store does with the bytes is its
// IngestHooks. It is safe for concurrent use; the hooks run under its
// lock.
type Ingest struct {
	f     *File
	store string // names the store in errors
	want  digest.Digest
	size  int64
	hooks IngestHooks

	mu        sync.Mutex // guards the hash, committed, closed, info and the hooks' state
	committed bool
	closed    bool
	info      content.Info
}

// IngestHooks are a store's part of an Ingest.
type IngestHooks struct {
	// Publish makes the verified bytes of f the blob d and returns its
	// Info; an error leaves the Ingest uncommitted.
	Publish func(ctx context.Context, f *File, d digest.Digest) (content.Info, error)
	// Wrote, if set, runs after each Write with the bytes written so far.
	Wrote func(written int64)
	// Closing, if set, runs at the first Close, before the file closes.
	Closing func()
	// Keep: Close leaves a committed file's name (Publish moved it);
	// without it, Close always removes the name.
	Keep bool
}

var _ content.Ingest = (*Ingest)(nil)

// NewIngest returns an Ingest writing f, the blob want of size bytes
// (-1: any size). store names the store in errors.
func NewIngest(f *File, store string, want digest.Digest, size int64, hooks IngestHooks) *Ingest {
	return &Ingest{f: f, store: store, want: want, size: size, hooks: hooks}
}

// Write appends p to the file and the hash. It returns content.ErrClosed
// after Commit or Close.
func (w *Ingest) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.committed {
		return 0, content.ErrClosed
	}
	n, err := w.f.Write(p)
	if w.hooks.Wrote != nil {
		w.hooks.Wrote(w.f.Written())
	}
	if err != nil {
		return n, fmt.Errorf("%s: write %s: %w", w.store, w.want, err)
	}
	return n, nil
}

// ReadAt reads bytes already written. It is safe to call concurrently with
// Write, and works until Close, also after Commit.
func (w *Ingest) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

// Written is the number of bytes written so far.
func (w *Ingest) Written() int64 { return w.f.Written() }

// WhileOpen runs fn with the file under the Ingest's lock, unless the
// Ingest is committed or closed: then it returns content.ErrClosed.
func (w *Ingest) WhileOpen(fn func(f *File) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.committed {
		return content.ErrClosed
	}
	return fn(w.f)
}

// Commit verifies the bytes (a *content.MismatchError if they are not the
// blob expected), then publishes them. It returns content.ErrClosed after
// Close.
func (w *Ingest) Commit(ctx context.Context) (content.Info, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return content.Info{}, content.ErrClosed
	}
	if err := w.f.Verify(ctx, w.want, w.size); err != nil {
		return content.Info{}, err
	}
	if w.committed {
		return w.info, nil
	}
	info, err := w.hooks.Publish(ctx, w.f, w.want)
	if err != nil {
		return content.Info{}, err
	}
	w.committed, w.info = true, info
	return info, nil
}

// Close releases the write and the file; without a Commit the bytes are
// discarded.
func (w *Ingest) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.hooks.Closing != nil {
		w.hooks.Closing()
	}
	if err := w.f.Close(!w.hooks.Keep || !w.committed); err != nil {
		return fmt.Errorf("%s: close %s: %w", w.store, w.want, err)
	}
	return nil
}
