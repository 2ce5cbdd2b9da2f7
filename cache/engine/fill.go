package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// errFillFailed is what readers of a failed fill get: the registry aborts
// their responses rather than completing a wrong body.
var errFillFailed = errors.New("blob fill failed")

// fill is one upstream fetch of a blob into the content store. Any number of
// readers follow the growing ingest while it runs.
type fill struct {
	d      digest.Digest
	target target

	ready     chan struct{} // closed once size is known, or the fill ended
	readyOnce sync.Once
	done      chan struct{} // closed when the fill committed or failed

	mu      sync.Mutex
	size    int64 // -1 until known
	written int64
	notify  chan struct{} // closed and replaced on each progress
	ing     content.Ingest
	err     error
	ended   bool
	refs    int
	repos   map[string]bool // repositories to link on success
}

func newFill(d digest.Digest, t target) *fill {
	return &fill{
		d: d, target: t,
		ready: make(chan struct{}), done: make(chan struct{}),
		size: -1, notify: make(chan struct{}), repos: map[string]bool{},
	}
}

// hasRepo reports whether repo is already known to hold the blob.
func (f *fill) hasRepo(repo string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repos[repo]
}

// acquire registers a reader (or the leader) so the ingest stays open.
func (f *fill) acquire() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

// release drops a reference and closes the ingest after the last one.
func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0 && f.ended
	ing := f.ing
	f.mu.Unlock()
	if last && ing != nil {
		ing.Close()
	}
}

func (f *fill) started(ing content.Ingest, size int64) {
	f.mu.Lock()
	f.ing = ing
	f.size = size
	f.mu.Unlock()
	if size >= 0 {
		f.readyOnce.Do(func() { close(f.ready) })
	}
}

func (f *fill) progress(written int64) {
	f.mu.Lock()
	f.written = written
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
}

// finish ends the fill with err (nil: committed) and wakes every reader.
func (f *fill) finish(err error) {
	f.mu.Lock()
	f.err = err
	f.ended = true
	if f.size < 0 && err == nil {
		f.size = f.written
	}
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
	f.readyOnce.Do(func() { close(f.ready) })
	close(f.done)
}

// wait blocks until the fill has committed (nil) or failed.
func (f *fill) wait(ctx context.Context) error {
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return fmt.Errorf("%w: %s: %v", errFillFailed, f.d, f.err)
	}
	return nil
}

// fillReader reads a fill's bytes as they arrive: it waits for more instead
// of returning EOF early, and fails if the fill fails.
type fillReader struct {
	f    *fill
	ctx  context.Context
	off  int64
	once sync.Once
}

func (r *fillReader) Read(p []byte) (int, error) {
	for {
		f := r.f
		f.mu.Lock()
		written, ended, ferr, ch, ing := f.written, f.ended, f.err, f.notify, f.ing
		f.mu.Unlock()
		if r.off < written && ing != nil {
			n := int64(len(p))
			if rest := written - r.off; n > rest {
				n = rest
			}
			got, err := ing.ReadAt(p[:n], r.off)
			r.off += int64(got)
			if got > 0 {
				return got, nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, err
			}
		}
		if ended {
			if ferr != nil {
				return 0, fmt.Errorf("%w: %s: %v", errFillFailed, f.d, ferr)
			}
			if r.off >= written {
				return 0, io.EOF
			}
			continue
		}
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *fillReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		r.f.mu.Lock()
		size := r.f.size
		r.f.mu.Unlock()
		if size < 0 {
			return 0, errors.New("fill: size not known yet")
		}
		abs = size + offset
	default:
		return 0, errors.New("fill: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("fill: negative position")
	}
	r.off = abs
	return abs, nil
}

func (r *fillReader) Close() error {
	r.once.Do(r.f.release)
	return nil
}

// runFill fetches f's blob from the upstream into the store. It runs on its
// own context: no client hanging up stops it.
func (e *Engine) runFill(f *fill, leaderRepo string) {
	ctx, cancel := context.WithTimeout(context.Background(), e.fillTimeout)
	defer cancel()
	e.m.fillsInFlight.Inc()
	defer e.m.fillsInFlight.Dec()
	log := e.log.With(zap.String("digest", f.d.String()), zap.String("rule", f.target.rule), zap.String("upstream", f.target.repo.String()))
	start := e.now()
	err := e.fetchBlob(ctx, f, log, start)
	if err == nil {
		err = e.linkFilled(ctx, f)
	}
	if err != nil {
		e.m.fillFailures.WithLabelValues(f.target.rule).Inc()
		log.Warn("blob fill failed", zap.Error(err))
	} else {
		log.Info("blob filled", zap.Int64("bytes", f.written), zap.Duration("took", e.now().Sub(start)))
	}
	// Remove from the in-flight map only after commit, so a new request
	// either joins this fill or finds the committed blob.
	e.mu.Lock()
	delete(e.fills, f.d)
	e.mu.Unlock()
	f.finish(err)
	f.release()
}

func (e *Engine) linkFilled(ctx context.Context, f *fill) error {
	f.mu.Lock()
	repos := make([]string, 0, len(f.repos))
	for r := range f.repos {
		repos = append(repos, r)
	}
	size := f.written
	f.mu.Unlock()
	for _, r := range repos {
		if err := e.index.LinkBlob(ctx, r, f.d, meta.Blob{Size: size, Origin: meta.OriginCache, Added: e.now()}); err != nil {
			return err
		}
	}
	return nil
}

// fetchBlob streams the upstream body into an ingest, resuming with Range
// when the body breaks, and commits it after checking size and digest.
func (e *Engine) fetchBlob(ctx context.Context, f *fill, log *zap.Logger, start time.Time) error {
	rule := f.target.rule
	e.m.upstream(rule, "blob", "GET")
	body, err := e.up.Blob(ctx, f.target.repo, f.d, 0, -1)
	if err != nil {
		return err
	}
	e.m.fillTTFB.WithLabelValues(rule).Observe(e.now().Sub(start).Seconds())
	ing, err := e.store.Ingest(ctx, f.d, body.Size)
	if err != nil {
		body.Body.Close()
		return err
	}
	f.started(ing, body.Size)
	size := body.Size
	sr := newStallReader(body.Body, e.stallTimeout)
	buf := make([]byte, 256<<10)
	var written int64
	attempts := 0
	for {
		n, rerr := sr.readChunk(buf)
		if n > 0 {
			if size >= 0 && written+int64(n) > size {
				sr.Close()
				return fmt.Errorf("%w: more than the %d bytes it announced", errBadUpstream, size)
			}
			if _, err := ing.Write(buf[:n]); err != nil {
				sr.Close()
				return err
			}
			written += int64(n)
			e.m.upBytes.WithLabelValues(rule).Add(float64(n))
			f.progress(written)
		}
		if rerr == nil {
			continue
		}
		sr.Close()
		if errors.Is(rerr, io.EOF) && (size < 0 || written == size) {
			break
		}
		// A broken body: resume from where it stopped.
		attempts++
		if attempts > e.resumeAttempts {
			return fmt.Errorf("%w: body broken after %d bytes, %d resumes: %v", errBadUpstream, written, attempts-1, rerr)
		}
		log.Info("resuming broken upstream body", zap.Int64("offset", written), zap.Int("attempt", attempts), zap.NamedError("cause", rerr))
		next, err := e.resume(ctx, f, written, size, attempts)
		if err != nil {
			return err
		}
		sr = newStallReader(next.Body, e.stallTimeout)
	}
	if _, err := ing.Commit(ctx); err != nil {
		return err
	}
	return nil
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
