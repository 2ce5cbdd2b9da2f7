package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/memupload"
	"github.com/airlock/airlock/rules"
	"github.com/opencontainers/go-digest"
)

// Defaults for upload sessions.
const (
	DefaultUploadTimeout       = upload.DefaultTimeout
	DefaultMaxUploadsPerClient = upload.DefaultMaxPerClient
	DefaultMaxUploads          = upload.DefaultMaxTotal
)

// uploads is where the engine keeps upload sessions: the store given with
// WithUploadStore, else an in-process one (memupload) over the content
// store's pending writes, bounded by limits.
type uploads struct {
	store  upload.Store // nil: the content store cannot take uploads
	limits upload.Limits
}

// WithUploadTimeout sets how long an upload session may stay idle before
// it is discarded with its bytes. It applies to the in-process session
// store; a store given with WithUploadStore has its own limits.
func WithUploadTimeout(d time.Duration) Option {
	return func(e *Engine) { e.uploads.limits.Timeout = d }
}

// WithMaxUploadsPerClient caps the upload sessions one client may hold
// open (in-process store; see WithUploadTimeout).
func WithMaxUploadsPerClient(n int) Option {
	return func(e *Engine) { e.uploads.limits.MaxPerClient = n }
}

// WithMaxUploads caps the upload sessions open at once (in-process store;
// see WithUploadTimeout).
func WithMaxUploads(n int) Option { return func(e *Engine) { e.uploads.limits.MaxTotal = n } }

// WithUploadStore keeps upload sessions in s instead of this process: a
// store shared by several replicas lets a push started on one go on and be
// committed on another. s publishes committed blobs into the content
// store the engine reads (the same store, or one sharing its backend).
func WithUploadStore(s upload.Store) Option { return func(e *Engine) { e.uploads.store = s } }

// initUploads picks the in-process store when no other was given.
func (e *Engine) initUploads() {
	if e.uploads.store != nil {
		return
	}
	if pi, ok := e.store.(content.PendingIngester); ok {
		e.uploads.store = memupload.New(pi, e.log, e.uploads.limits)
	}
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
	if e.uploads.store == nil {
		return nil, fmt.Errorf("%w: the content store cannot take uploads", cache.ErrUnsupported)
	}
	alg := o.Algorithm
	if alg == "" || !alg.Available() {
		alg = digest.Canonical
	}
	s, err := e.uploads.store.Start(ctx, upload.Options{Repo: repo, Client: o.Client, Algorithm: alg})
	if errors.Is(err, upload.ErrTooMany) {
		return nil, &cache.UpstreamError{Err: cache.ErrTooManyRequests, RetryAfter: time.Minute, Cause: err}
	}
	if err != nil {
		return nil, err
	}
	return &session{e: e, s: s}, nil
}

// Upload implements cache.BlobUploader.
func (e *Engine) Upload(ctx context.Context, repo, id string) (cache.Upload, error) {
	if e.uploads.store == nil {
		return nil, fmt.Errorf("%w: %s", cache.ErrUploadUnknown, id)
	}
	s, err := e.uploads.store.Open(ctx, id)
	if errors.Is(err, upload.ErrUnknown) || err == nil && s.Repo() != repo {
		return nil, fmt.Errorf("%w: %s", cache.ErrUploadUnknown, id)
	}
	if err != nil {
		return nil, err
	}
	return &session{e: e, s: s}, nil
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

// session is one upload as the cache contract sees it: the store's
// session, its errors in the contract's terms, and the link of the
// committed blob to the repository.
type session struct {
	e *Engine
	s upload.Session
}

var _ cache.Upload = (*session)(nil)

func (s *session) ID() string { return s.s.ID() }

func (s *session) Size() int64 { return s.s.Size() }

func (s *session) Append(ctx context.Context, offset int64, r io.Reader) (int64, error) {
	n, err := s.s.Append(ctx, offset, r)
	return n, uploadErr(s.s.ID(), err)
}

func (s *session) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %q: %v", cache.ErrDigestInvalid, d, err)
	}
	info, err := s.s.Commit(ctx, d)
	var me *content.MismatchError
	switch {
	case errors.As(err, &me):
		return 0, fmt.Errorf("%w: %v", cache.ErrDigestInvalid, me)
	case errors.Is(err, content.ErrUnsupportedDigest):
		return 0, fmt.Errorf("%w: %v", cache.ErrDigestInvalid, err)
	case err != nil:
		return 0, uploadErr(s.s.ID(), err)
	}
	if err := s.e.index.LinkBlob(ctx, s.s.Repo(), d, meta.Blob{Size: info.Size, Origin: meta.OriginPush, Added: s.e.now()}); err != nil {
		return 0, err
	}
	s.e.m.push.pushed.WithLabelValues("blob").Inc()
	return info.Size, nil
}

func (s *session) Cancel(ctx context.Context) error {
	return uploadErr(s.s.ID(), s.s.Cancel(ctx))
}

// uploadErr turns a session store's errors into the cache contract's.
func uploadErr(id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, upload.ErrUnknown):
		return fmt.Errorf("%w: %s: %v", cache.ErrUploadUnknown, id, err)
	case errors.Is(err, upload.ErrOffset):
		return fmt.Errorf("%w: %v", cache.ErrRangeInvalid, err)
	}
	return fmt.Errorf("upload %s: %w", id, quotaDenied(err))
}
