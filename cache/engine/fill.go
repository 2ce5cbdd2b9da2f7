package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
)

var (
	// errFillFailed is what readers of a failed fill get: the registry
	// aborts their responses rather than completing a wrong body.
	errFillFailed = errors.New("blob fill failed")
	// errSlowReader is what a reader gets when a fill passing a blob
	// through (passthrough.go) had to go on without it.
	errSlowReader = errors.New("blob passed through: this client fell behind the others")
)

// fill is one upstream fetch of a blob. Its bytes go into the content store
// through an ingest, or, when the store has no room, through a window in
// memory (passthrough.go). Any number of readers follow the growing bytes
// while it runs.
type fill struct {
	d      digest.Digest
	target target
	// private is true for a fill no other request can join (it is not in
	// the engine's fill group): a late request's own pass-through.
	private bool
	// Of a replica of a cluster (clusterfill.go): the repository of the
	// request that started the fill (relays ask for it), whether a peer
	// relayed that request (the fill never goes to the owner then), and
	// the fill record's claim while this replica holds it. Only the
	// fill's goroutine touches claim.
	origin  string
	relayed bool
	claim   FillClaim

	ready     chan struct{} // closed once size is known, or the fill ended
	readyOnce sync.Once
	done      chan struct{} // closed when the fill committed or failed

	mu      sync.Mutex
	size    int64 // -1 until known
	written int64
	head    int64         // written plus the bytes being written now (pass-through)
	notify  chan struct{} // closed and replaced on each progress
	sp      spool         // nil until the upstream answered
	kept    bool          // sp is the store's ingest (false: passed through)
	err     error
	ended   bool
	refs    int                   // the leader and the readers
	readers map[*fillReader]int64 // each reader and the offset it reads from next
	moved   chan struct{}         // closed and replaced when a reader moves on or leaves
	repos   map[string]bool       // repositories to link on success
	linked  bool                  // repos were read to be linked: too late to add one
}

func newFill(d digest.Digest, t target) *fill {
	return &fill{
		d: d, target: t,
		ready: make(chan struct{}), done: make(chan struct{}),
		size: -1, notify: make(chan struct{}), moved: make(chan struct{}),
		readers: map[*fillReader]int64{}, repos: map[string]bool{},
	}
}

// hasRepo reports whether repo is already known to hold the blob.
func (f *fill) hasRepo(repo string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repos[repo]
}

// addRepo records that repo may share the blob and is to be linked to it.
// It reports false when the fill is linking its repositories already (it
// committed) and repo is not one of them: the caller links repo itself.
func (f *fill) addRepo(repo string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.repos[repo] {
		return true // linked by the fill
	}
	if f.linked {
		return false
	}
	f.repos[repo] = true
	return true
}

// acquire takes the leader's reference, which keeps the bytes until the
// fill ends.
func (f *fill) acquire() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

// joinResult says whether a request could follow a fill.
type joinResult int

const (
	joined      joinResult = iota
	joinedEnded            // the fill ended and let go of its bytes
	joinedLate             // the fill passes the blob through and its first bytes are gone
)

// join registers a request that follows the fill from its first byte.
func (f *fill) join(ctx context.Context) (*fillReader, joinResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.ended && f.refs == 0:
		return nil, joinedEnded
	case f.sp != nil && !f.kept && f.head > f.sp.(*passSpool).capacity():
		return nil, joinedLate
	}
	r := &fillReader{f: f, ctx: ctx}
	f.refs++
	f.readers[r] = 0
	return r, joined
}

// failure is the error the fill ended with (nil while it runs or after it
// committed).
func (f *fill) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// release drops a reference and closes the spool after the last one.
func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0 && f.ended
	sp := f.sp
	f.mu.Unlock()
	if last && sp != nil {
		sp.close()
	}
}

// leave unregisters reader r and drops its reference.
func (f *fill) leave(r *fillReader) {
	f.mu.Lock()
	delete(f.readers, r)
	f.signalMoved()
	f.mu.Unlock()
	f.release()
}

// signalMoved wakes a pass-through waiting for its readers. f.mu is held.
func (f *fill) signalMoved() {
	if f.sp != nil && !f.kept {
		close(f.moved)
		f.moved = make(chan struct{})
	}
}

func (f *fill) started(sp spool, kept bool, size int64) {
	f.mu.Lock()
	f.sp, f.kept = sp, kept
	f.size = size
	f.mu.Unlock()
	if size >= 0 {
		f.readyOnce.Do(func() { close(f.ready) })
	}
}

func (f *fill) progress(written int64) {
	f.mu.Lock()
	f.written = written
	f.head = written
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
}

func (f *fill) isKept() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kept
}

// finish ends the fill with err (nil: committed or passed through
// verified) and wakes every reader.
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

// wait blocks until the fill has verified its bytes (nil) or failed.
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
		if at, ok := f.readers[r]; !ok {
			f.mu.Unlock()
			return 0, fmt.Errorf("%w: %s", errSlowReader, f.d)
		} else if at != r.off {
			f.readers[r] = r.off // bytes before it may go (pass-through)
			f.signalMoved()
		}
		written, ended, ferr, ch, sp := f.written, f.ended, f.err, f.notify, f.sp
		f.mu.Unlock()
		if r.off < written && sp != nil {
			n := int64(len(p))
			if rest := written - r.off; n > rest {
				n = rest
			}
			got, err := sp.ReadAt(p[:n], r.off)
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

// Close stops following the fill.
func (r *fillReader) Close() error {
	r.once.Do(func() { r.f.leave(r) })
	return nil
}
