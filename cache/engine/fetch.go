package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/internal/flight"
	"github.com/airlock/airlock/upstream"
	"go.uber.org/zap"
)

// runFill fetches f's blob from the upstream into the store (or passes it
// through). It runs on its own context: no client hanging up stops it. c is
// f's call in the fill group, nil for a private fill.
func (e *Engine) runFill(f *fill, c *flight.Call[*fill]) {
	ctx, cancel := context.WithTimeout(context.Background(), e.fillTimeout)
	defer cancel()
	e.m.fillsInFlight.Inc()
	defer e.m.fillsInFlight.Dec()
	log := e.log.With(zap.String("digest", f.d.String()), zap.String("rule", f.target.rule), zap.String("upstream", f.target.repo.String()))
	start := e.now()
	var err error
	if e.cluster != nil && !f.private {
		err = e.fetchClustered(ctx, f, log, start)
	} else {
		err = e.fetchBlob(ctx, f, log, start)
	}
	kept := f.isKept()
	if err == nil && kept {
		// Verified and committed: every reader gets its last byte now.
		// The links follow (they may wait while a collector decides, here
		// or on another replica): until they are written the fill stays in
		// the group, so a request for the blob meanwhile joins it and gets
		// the committed bytes at once.
		f.finish(nil)
		if lerr := e.linkFilled(ctx, f); lerr != nil {
			// The blob is committed; a request for it links it (confirm).
			log.Warn("blob filled, but not linked to its repositories", zap.Error(lerr))
		}
	}
	if f.claim != nil {
		// After the commit and the links: a replica claiming next finds
		// the blob committed.
		if rerr := f.claim.Release(ctx); rerr != nil {
			log.Warn("release the blob's fill record", zap.Error(rerr))
		}
	}
	switch {
	case errors.Is(err, errNoReaders):
		log.Info("blob pass-through stopped: every client left", zap.Int64("bytes", f.written))
	case err != nil:
		e.m.fillFailures.WithLabelValues(f.target.rule).Inc()
		log.Warn("blob fill failed", zap.Error(err))
	case kept:
		log.Info("blob filled", zap.Int64("bytes", f.written), zap.Duration("took", e.now().Sub(start)))
	default:
		log.Info("blob passed through", zap.Int64("bytes", f.written), zap.Duration("took", e.now().Sub(start)))
	}
	// Leave the group only after commit and links: a request that finds
	// no fill then finds the committed blob (joinFill) and, if the fill
	// was for its repository, the link (blob looks at the group, then at
	// the index again, before taking the blob for another repository's).
	if c != nil {
		e.fills.End(f.d, c, err)
	} else {
		defer e.private.Add(-1)
	}
	if err != nil || !kept {
		f.finish(err)
	}
	f.release()
}

// linkFilled links the committed blob to the fill's repositories; a
// repository added after this (addRepo) is linked by whoever adds it. A
// link that raced a collector's section (meta.ErrRaced) is written again:
// the blob was committed just now, so no collector deletes it (it is
// younger than the grace period, and the fill is still running).
func (e *Engine) linkFilled(ctx context.Context, f *fill) error {
	f.mu.Lock()
	f.linked = true
	repos := make([]string, 0, len(f.repos))
	for r := range f.repos {
		repos = append(repos, r)
	}
	size := f.written
	f.mu.Unlock()
	for _, r := range repos {
		err := relink(func() error {
			return e.index.LinkBlob(ctx, r, f.d, meta.Blob{Size: size, Origin: meta.OriginCache, Added: e.now()})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// relinks is how many times a link that raced an exclusive section is
// written again.
const relinks = 3

// relink runs link, again while it fails with meta.ErrRaced (the second
// write waits for the section that raced it to end). The caller knows
// that what it links exists and is no collector's to delete: content it
// wrote just now.
func relink(link func() error) error {
	var err error
	for range relinks {
		if err = link(); !errors.Is(err, meta.ErrRaced) {
			return err
		}
	}
	return err
}

// fetchBlob streams the upstream body into an ingest, resuming with Range
// when the body breaks, and commits it after checking size and digest.
// When the store has no room for it, the body goes through a window in
// memory instead, at the pace of the readers, and is verified all the same.
func (e *Engine) fetchBlob(ctx context.Context, f *fill, log *zap.Logger, start time.Time) error {
	rule := f.target.rule
	e.m.upstream(rule, "blob", "GET")
	body, err := e.up.Blob(ctx, f.target.repo, f.d, 0, -1)
	if err != nil {
		return err
	}
	e.m.fillTTFB.WithLabelValues(rule).Observe(e.now().Sub(start).Seconds())
	sp, kept, err := e.spoolFor(ctx, f, body.Size, log)
	if err != nil {
		body.Body.Close()
		return err
	}
	f.started(sp, kept, body.Size)
	size := body.Size
	sr := newStallReader(body.Body, e.stallTimeout)
	buf := make([]byte, fillBuffer)
	count := func(n int) { e.m.upBytes.WithLabelValues(rule).Add(float64(n)) }
	var written int64
	attempts := 0
	for {
		var brk *bodyBroken
		if written, err = e.pump(ctx, f, sp, kept, sr, written, size, buf, count); !errors.As(err, &brk) {
			if err != nil {
				return err
			}
			break
		}
		// A broken body: resume from where it stopped.
		attempts++
		if attempts > e.resumeAttempts {
			return fmt.Errorf("%w: body broken after %d bytes, %d resumes: %v", errBadUpstream, written, attempts-1, brk.cause)
		}
		log.Info("resuming broken upstream body", zap.Int64("offset", written), zap.Int("attempt", attempts), zap.NamedError("cause", brk.cause))
		next, err := e.resume(ctx, f, written, size, attempts)
		if err != nil {
			return err
		}
		sr = newStallReader(next.Body, e.stallTimeout)
	}
	return sp.commit(ctx)
}

// fillBuffer is the size of a fill's read buffer.
const fillBuffer = 256 << 10

// bodyBroken is how pump says a body broke before its end: the fill may
// go on from the offset reached, with another request.
type bodyBroken struct{ cause error }

func (b *bodyBroken) Error() string { return "body broken: " + b.cause.Error() }

// pump copies the body sr into sp from offset written until the body
// ends (nil) or breaks (a *bodyBroken), and returns the offset reached;
// any other error ends the fill. count is told of every chunk written.
// It closes sr.
func (e *Engine) pump(ctx context.Context, f *fill, sp spool, kept bool, sr *stallReader, written, size int64, buf []byte, count func(int)) (int64, error) {
	for {
		n, rerr := sr.readChunk(buf)
		if n > 0 {
			if size >= 0 && written+int64(n) > size {
				sr.Close()
				return written, fmt.Errorf("%w: more than the %d bytes it announced", errBadUpstream, size)
			}
			if !kept {
				if err := f.waitRoom(ctx, int64(n), e.stallTimeout); err != nil {
					sr.Close()
					return written, err
				}
			}
			if _, err := sp.Write(buf[:n]); err != nil {
				sr.Close()
				return written, err
			}
			written += int64(n)
			count(n)
			f.progress(written)
		}
		if rerr == nil {
			continue
		}
		sr.Close()
		if errors.Is(rerr, io.EOF) && (size < 0 || written == size) {
			return written, nil
		}
		return written, &bodyBroken{cause: rerr}
	}
}

// resume re-requests the blob from offset. If the upstream ignores Range it
// skips the bytes already written (they are hashed already).
func (e *Engine) resume(ctx context.Context, f *fill, offset, size int64, attempt int) (upstream.BlobBody, error) {
	select {
	case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
	case <-ctx.Done():
		return upstream.BlobBody{}, ctx.Err()
	}
	e.m.upstream(f.target.rule, "blob", "GET")
	b, err := e.up.Blob(ctx, f.target.repo, f.d, offset, size)
	if err != nil {
		return upstream.BlobBody{}, err
	}
	switch b.Offset {
	case offset:
		return b, nil
	case 0:
		if _, err := io.CopyN(io.Discard, b.Body, offset); err != nil {
			b.Body.Close()
			return upstream.BlobBody{}, fmt.Errorf("%w: skip %d bytes of a full response: %v", errBadUpstream, offset, err)
		}
		b.Offset = offset
		return b, nil
	}
	b.Body.Close()
	return upstream.BlobBody{}, fmt.Errorf("%w: resumed at %d, want %d", errBadUpstream, b.Offset, offset)
}

// minChunk is how much a fill gathers before telling readers, unless the
// body ends or stops first.
const minChunk = 32 << 10

// stallReader closes an upstream body that sends nothing for the stall
// timeout while it is being read, so the blocked read returns and the fill
// resumes instead of hanging. One timer per body, re-armed per chunk.
type stallReader struct {
	body    io.ReadCloser
	timeout time.Duration
	t       *time.Timer
	stalled atomic.Bool
}

func newStallReader(body io.ReadCloser, timeout time.Duration) *stallReader {
	s := &stallReader{body: body, timeout: timeout}
	s.t = time.AfterFunc(timeout, func() {
		s.stalled.Store(true)
		body.Close()
	})
	s.t.Stop()
	return s
}

// readChunk reads at least minChunk bytes, or until an error.
func (s *stallReader) readChunk(buf []byte) (int, error) {
	s.t.Reset(s.timeout)
	n := 0
	var err error
	for n < minChunk && err == nil {
		var m int
		m, err = s.body.Read(buf[n:])
		n += m
		if m > 0 {
			s.t.Reset(s.timeout)
		}
	}
	s.t.Stop()
	if err != nil && s.stalled.Load() {
		err = fmt.Errorf("upstream body stalled for %v: %w", s.timeout, err)
	}
	return n, err
}

func (s *stallReader) Close() error {
	s.t.Stop()
	return s.body.Close()
}
