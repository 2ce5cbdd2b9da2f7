package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// When the content store has no room for a blob within its quota (pins and
// pushed content fill it), the blob is passed through: its fill streams the
// upstream body to the requests following it through a window in memory,
// never writing it to the store, and verifies it as a stored fill does (the
// last byte of every response waits for the digest). The fill moves at the
// pace of its slowest reader, so the window never holds more than
// passWindow bytes; a reader that makes no progress for the stall timeout
// is cut off (its response is aborted and its client retries) so that the
// others go on. A request that comes after the window has moved past the
// first byte cannot follow; it gets a fill of its own.

// passWindow is the most a pass-through keeps in memory.
const passWindow = 4 << 20

// errNoReaders stops a pass-through that nobody follows any more.
var errNoReaders = errors.New("every client left the blob passed through")

// spool holds a fill's bytes for its readers while it runs.
type spool interface {
	io.Writer
	io.ReaderAt
	// commit verifies the bytes against the digest (and the size, when
	// known) and, for the store's ingest, makes the blob visible.
	commit(ctx context.Context) error
	close() error
}

// ingestSpool keeps the bytes: they go into the content store.
type ingestSpool struct{ content.Ingest }

func (s ingestSpool) commit(ctx context.Context) error {
	_, err := s.Commit(ctx)
	return err
}

func (s ingestSpool) close() error { return s.Close() }

// spoolFor returns where f's bytes go: the store, or, when the store has
// no room for size bytes, a window in memory (kept false).
func (e *Engine) spoolFor(ctx context.Context, f *fill, size int64, log *zap.Logger) (sp spool, kept bool, err error) {
	ing, err := e.store.Ingest(ctx, f.d, size)
	if err == nil {
		return ingestSpool{ing}, true, nil
	}
	if !errors.Is(err, content.ErrNoRoom) || size < 0 {
		return nil, false, err
	}
	ps, perr := newPassSpool(f.d, size)
	if perr != nil {
		return nil, false, perr
	}
	e.m.uncached.WithLabelValues(f.target.rule, "blob").Inc()
	e.m.uncachedBytes.WithLabelValues(f.target.rule).Add(float64(size))
	log.Warn("no room for the blob within the storage quota: serving it without keeping it", zap.Int64("bytes", size), zap.Error(err))
	return ps, false, nil
}

// passSpool is a ring of the last bytes of a blob passed through, hashed
// as they arrive.
type passSpool struct {
	mu      sync.Mutex
	buf     []byte
	written int64
	d       digest.Digest
	size    int64
	dg      digest.Digester
}

func newPassSpool(d digest.Digest, size int64) (*passSpool, error) {
	if !d.Algorithm().Available() {
		return nil, fmt.Errorf("%w: %s", content.ErrUnsupportedDigest, d)
	}
	return &passSpool{buf: make([]byte, max(min(size, passWindow), 1)), d: d, size: size, dg: d.Algorithm().Digester()}, nil
}

func (s *passSpool) capacity() int64 { return int64(len(s.buf)) }

func (s *passSpool) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf == nil {
		return 0, content.ErrClosed
	}
	s.dg.Hash().Write(p)
	for rest := p; len(rest) > 0; {
		n := copy(s.buf[s.written%int64(len(s.buf)):], rest)
		rest = rest[n:]
		s.written += int64(n)
	}
	return len(p), nil
}

func (s *passSpool) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.buf == nil:
		return 0, content.ErrClosed
	case off < s.written-int64(len(s.buf)):
		return 0, fmt.Errorf("%w: %s: offset %d left the window", errSlowReader, s.d, off)
	case off >= s.written:
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < s.written {
		m := copy(p[n:min(int64(len(p)), int64(n)+s.written-off)], s.buf[off%int64(len(s.buf)):])
		n += m
		off += int64(m)
	}
	return n, nil
}

func (s *passSpool) commit(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.dg.Digest(); got != s.d || (s.size >= 0 && s.written != s.size) {
		return &content.MismatchError{WantDigest: s.d, GotDigest: got, WantSize: s.size, GotSize: s.written}
	}
	return nil
}

func (s *passSpool) close() error {
	s.mu.Lock()
	s.buf = nil
	s.mu.Unlock()
	return nil
}

// waitRoom waits until n more bytes fit in the window beside what the
// slowest reader still has to read. A reader that holds the window for the
// stall timeout is cut off. It fails with errNoReaders when nobody follows
// the fill any more.
func (f *fill) waitRoom(ctx context.Context, n int64, stall time.Duration) error {
	t := time.NewTimer(stall)
	defer t.Stop()
	for {
		f.mu.Lock()
		if len(f.readers) == 0 {
			f.mu.Unlock()
			return errNoReaders
		}
		low := f.written
		for _, off := range f.readers {
			low = min(low, off)
		}
		if f.written+n-low <= f.sp.(*passSpool).capacity() {
			f.head = f.written + n
			f.mu.Unlock()
			return nil
		}
		moved := f.moved
		f.mu.Unlock()
		select {
		case <-moved:
			t.Reset(stall)
		case <-t.C:
			f.cutReadersAt(low)
			t.Reset(stall)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// cutReadersAt drops the readers still at offset off: their next read
// fails (errSlowReader), which aborts their responses.
func (f *fill) cutReadersAt(off int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r, at := range f.readers {
		if at == off {
			delete(f.readers, r)
		}
	}
	close(f.notify) // wake them if they wait for bytes
	f.notify = make(chan struct{})
}
