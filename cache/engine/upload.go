package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/rules"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// Defaults for upload sessions.
const (
	DefaultUploadTimeout       = 15 * time.Minute
	DefaultMaxUploadsPerClient = 32
	DefaultMaxUploads          = 1024
)

// uploads holds the open upload sessions. Its zero value is ready: unset
// limits take the defaults.
type uploads struct {
	timeout      time.Duration
	maxPerClient int
	maxTotal     int

	mu        sync.Mutex
	sessions  map[string]*session
	perClient map[string]int
}

// WithUploadTimeout sets how long an upload session may stay idle before
// it is discarded with its bytes.
func WithUploadTimeout(d time.Duration) Option { return func(e *Engine) { e.uploads.timeout = d } }

// WithMaxUploadsPerClient caps the upload sessions one client may hold open.
func WithMaxUploadsPerClient(n int) Option { return func(e *Engine) { e.uploads.maxPerClient = n } }

// WithMaxUploads caps the upload sessions open at once.
func WithMaxUploads(n int) Option { return func(e *Engine) { e.uploads.maxTotal = n } }

func (u *uploads) idle() time.Duration {
	if u.timeout > 0 {
		return u.timeout
	}
	return DefaultUploadTimeout
}

func orDefault(n, d int) int {
	if n > 0 {
		return n
	}
	return d
}

var _ cache.BlobUploader = (*Engine)(nil)

// writable checks that repo may be pushed to.
func (e *Engine) writable(repo string) error {
	if !rules.ValidRepository(repo) {
		return fmt.Errorf("%w: %q", cache.ErrNameInvalid, repo)
	}
	if t := e.resolve(repo); t.cached() {
		return fmt.Errorf("%w: %s is a cache of an upstream (rule %s)", cache.ErrDenied, repo, t.rule)
	}
	return nil
}

// StartUpload implements cache.BlobUploader.
func (e *Engine) StartUpload(ctx context.Context, repo string, o cache.UploadOptions) (cache.Upload, error) {
	if err := e.writable(repo); err != nil {
		return nil, err
	}
	pi, ok := e.store.(content.PendingIngester)
	if !ok {
		return nil, fmt.Errorf("%w: the content store cannot take uploads", cache.ErrUnsupported)
	}
	alg := o.Algorithm
	if alg == "" || !alg.Available() {
		alg = digest.Canonical
	}
	u := &e.uploads
	u.mu.Lock()
	if u.sessions == nil {
		u.sessions, u.perClient = map[string]*session{}, map[string]int{}
	}
	if len(u.sessions) >= orDefault(u.maxTotal, DefaultMaxUploads) {
		u.mu.Unlock()
		return nil, &cache.UpstreamError{Err: cache.ErrTooManyRequests, RetryAfter: time.Minute, Cause: errors.New("too many open upload sessions")}
	}
	if o.Client != "" && u.perClient[o.Client] >= orDefault(u.maxPerClient, DefaultMaxUploadsPerClient) {
		u.mu.Unlock()
		return nil, &cache.UpstreamError{Err: cache.ErrTooManyRequests, RetryAfter: time.Minute, Cause: errors.New("this client has too many open upload sessions")}
	}
	u.perClient[o.Client]++
	u.mu.Unlock()

	var rnd [16]byte
	p, err := pi.IngestPending(ctx, alg)
	if err == nil {
		_, err = rand.Read(rnd[:])
	}
	if err != nil {
		if p != nil {
			p.Close()
		}
		u.release(o.Client)
		return nil, fmt.Errorf("start upload: %w", err)
	}
	s := &session{e: e, id: hex.EncodeToString(rnd[:]), repo: repo, client: o.Client, p: p, sem: make(chan struct{}, 1)}
	u.mu.Lock()
	u.sessions[s.id] = s
	s.timer = time.AfterFunc(u.idle(), s.expire)
	u.mu.Unlock()
	e.m.push.uploads.Inc()
	return s, nil
}

func (u *uploads) release(client string) {
	u.mu.Lock()
	if u.perClient[client]--; u.perClient[client] <= 0 {
		delete(u.perClient, client)
	}
	u.mu.Unlock()
}

// Upload implements cache.BlobUploader.
func (e *Engine) Upload(ctx context.Context, repo, id string) (cache.Upload, error) {
	u := &e.uploads
	u.mu.Lock()
	s := u.sessions[id]
	u.mu.Unlock()
	if s == nil || s.repo != repo {
		return nil, fmt.Errorf("%w: %s", cache.ErrUploadUnknown, id)
	}
	return s, nil
}

// Mount implements cache.BlobUploader.
func (e *Engine) Mount(ctx context.Context, repo, from string, d digest.Digest) (int64, error) {
	if err := e.writable(repo); err != nil {
		return 0, err
	}
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %q: %v", cache.ErrDigestInvalid, d, err)
	}
	if from != "" {
		if !rules.ValidRepository(from) {
			return 0, fmt.Errorf("%w: mount from %q", cache.ErrBlobUnknown, from)
		}
		if _, err := e.index.Blob(ctx, from, d); errors.Is(err, meta.ErrNotFound) {
			return 0, fmt.Errorf("%w: %s@%s", cache.ErrBlobUnknown, from, d)
		} else if err != nil {
			return 0, err
		}
	}
	info, err := e.store.Stat(ctx, d)
	if errors.Is(err, content.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s", cache.ErrBlobUnknown, d)
	} else if err != nil {
		return 0, err
	}
	if err := e.index.LinkBlob(ctx, repo, d, meta.Blob{Size: info.Size, Origin: meta.OriginPush, Added: e.now()}); err != nil {
		return 0, err
	}
	return info.Size, nil
}

// session is one upload. sem serializes its callers (and the expiry);
// ended and p are guarded by it.
type session struct {
	e                *Engine
	id, repo, client string
	sem              chan struct{}
	timer            *time.Timer
	p                content.Pending
	ended            bool
	size             atomic.Int64 // bytes written, readable while an Append runs
}

var _ cache.Upload = (*session)(nil)

func (s *session) ID() string { return s.id }

func (s *session) Size() int64 { return s.size.Load() }

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
		return fmt.Errorf("%w: %s", cache.ErrUploadUnknown, s.id)
	}
	s.timer.Stop()
	return nil
}

// unlock lets the next caller in and restarts the idle clock.
func (s *session) unlock() {
	if !s.ended {
		s.timer.Reset(s.e.uploads.idle())
	}
	<-s.sem
}

func (s *session) Append(ctx context.Context, offset int64, r io.Reader) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.unlock()
	if at := s.p.Written(); offset != at {
		return 0, fmt.Errorf("%w: chunk starts at %d, upload is at %d", cache.ErrRangeInvalid, offset, at)
	}
	n, err := io.Copy(counter{s}, r)
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", s.id, quotaDenied(err))
	}
	return n, nil
}

func (s *session) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.unlock()
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %q: %v", cache.ErrDigestInvalid, d, err)
	}
	defer s.end()
	info, err := s.p.Commit(ctx, d)
	var me *content.MismatchError
	switch {
	case errors.As(err, &me):
		return 0, fmt.Errorf("%w: %v", cache.ErrDigestInvalid, me)
	case errors.Is(err, content.ErrUnsupportedDigest):
		return 0, fmt.Errorf("%w: %v", cache.ErrDigestInvalid, err)
	case err != nil:
		return 0, err
	}
	if err := s.e.index.LinkBlob(ctx, s.repo, d, meta.Blob{Size: info.Size, Origin: meta.OriginPush, Added: s.e.now()}); err != nil {
		return 0, err
	}
	s.e.m.push.pushed.WithLabelValues("blob").Inc()
	return info.Size, nil
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
		s.e.log.Warn("close upload", zap.String("upload", s.id), zap.Error(err))
	}
	u := &s.e.uploads
	u.mu.Lock()
	delete(u.sessions, s.id)
	u.mu.Unlock()
	u.release(s.client)
	s.e.m.push.uploads.Dec()
}

// expire discards an idle session; a busy one gets another idle period.
func (s *session) expire() {
	select {
	case s.sem <- struct{}{}:
	default:
		s.timer.Reset(s.e.uploads.idle())
		return
	}
	if !s.ended {
		s.e.log.Info("upload session expired", zap.String("repo", s.repo), zap.String("upload", s.id), zap.Int64("bytes", s.p.Written()))
		s.e.m.push.expired.Inc()
		s.end()
	}
	<-s.sem
}
