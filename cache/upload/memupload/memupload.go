// Package memupload keeps upload sessions in this process (the embedded
// default): each session is a pending write of the content store, which
// hashes the bytes as they arrive and commits them under their digest.
// Sessions end with the process; a timer discards one left idle.
package memupload

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/upload"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// Store is the in-process session store. It is safe for concurrent use.
type Store struct {
	pi  content.PendingIngester
	log *zap.Logger
	lim upload.Limits

	mu        sync.Mutex
	sessions  map[string]*session
	perClient map[string]int
	expired   atomic.Int64
}

var _ upload.Store = (*Store)(nil)

// New returns a store writing the sessions' bytes to pi.
func New(pi content.PendingIngester, log *zap.Logger, l upload.Limits) *Store {
	return &Store{pi: pi, log: log, lim: l.Resolved(), sessions: map[string]*session{}, perClient: map[string]int{}}
}

// Start implements upload.Store.
func (st *Store) Start(ctx context.Context, o upload.Options) (upload.Session, error) {
	alg := o.Algorithm
	if alg == "" {
		alg = digest.Canonical
	}
	st.mu.Lock()
	if err := st.lim.Check(len(st.sessions), st.perClient[o.Client], o.Client); err != nil {
		st.mu.Unlock()
		return nil, err
	}
	st.perClient[o.Client]++
	st.mu.Unlock()
	p, err := st.pi.IngestPending(ctx, alg)
	if err != nil {
		st.release(o.Client)
		return nil, fmt.Errorf("start upload: %w", err)
	}
	s := &session{st: st, id: upload.NewID(), repo: o.Repo, client: o.Client, p: p, sem: make(chan struct{}, 1)}
	st.mu.Lock()
	st.sessions[s.id] = s
	s.timer = time.AfterFunc(st.lim.Timeout, s.expire)
	st.mu.Unlock()
	return s, nil
}

// Open implements upload.Store.
func (st *Store) Open(_ context.Context, id string) (upload.Session, error) {
	st.mu.Lock()
	s := st.sessions[id]
	st.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w: %s", upload.ErrUnknown, id)
	}
	return s, nil
}

// Stats implements upload.Store.
func (st *Store) Stats() upload.Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	return upload.Stats{Open: len(st.sessions), Expired: st.expired.Load()}
}

func (st *Store) release(client string) {
	st.mu.Lock()
	if st.perClient[client]--; st.perClient[client] <= 0 {
		delete(st.perClient, client)
	}
	st.mu.Unlock()
}

// session is one upload. sem serializes its callers (and the expiry);
// ended and p are guarded by it.
type session struct {
	st               *Store
	id, repo, client string
	sem              chan struct{}
	timer            *time.Timer
	p                content.Pending
	ended            bool
	size             atomic.Int64 // bytes written, readable while an Append runs
}

func (s *session) ID() string   { return s.id }
func (s *session) Repo() string { return s.repo }
func (s *session) Size() int64  { return s.size.Load() }

// counter counts what reaches the pending blob.
type counter struct{ s *session }

func (c counter) Write(b []byte) (int, error) {
	n, err := c.s.p.Write(b)
	c.s.size.Add(int64(n))
	return n, err
}

func (s *session) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.ended {
		<-s.sem
		return fmt.Errorf("%w: %s", upload.ErrUnknown, s.id)
	}
	s.timer.Stop()
	return nil
}

// unlock lets the next caller in and restarts the idle clock.
func (s *session) unlock() {
	if !s.ended {
		s.timer.Reset(s.st.lim.Timeout)
	}
	<-s.sem
}

func (s *session) Append(ctx context.Context, offset int64, r io.Reader) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.unlock()
	if at := s.p.Written(); offset != at {
		return 0, fmt.Errorf("%w: chunk starts at %d, upload is at %d", upload.ErrOffset, offset, at)
	}
	n, err := io.Copy(counter{s}, r)
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", s.id, err)
	}
	return n, nil
}

func (s *session) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	if err := s.lock(ctx); err != nil {
		return content.Info{}, err
	}
	defer s.unlock()
	defer s.end()
	return s.p.Commit(ctx, d)
}

func (s *session) Cancel(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	s.end()
	return nil
}

// end discards the session; the caller holds sem.
func (s *session) end() {
	if s.ended {
		return
	}
	s.ended = true
	s.timer.Stop()
	if err := s.p.Close(); err != nil {
		s.st.log.Warn("close upload", zap.String("upload", s.id), zap.Error(err))
	}
	st := s.st
	st.mu.Lock()
	delete(st.sessions, s.id)
	st.mu.Unlock()
	st.release(s.client)
}

// expire discards an idle session; a busy one gets another idle period.
func (s *session) expire() {
	select {
	case s.sem <- struct{}{}:
	default:
		s.timer.Reset(s.st.lim.Timeout)
		return
	}
	if !s.ended {
		s.st.log.Info("upload session expired", zap.String("repo", s.repo), zap.String("upload", s.id), zap.Int64("bytes", s.p.Written()))
		s.st.expired.Add(1)
		s.end()
	}
	<-s.sem
}
