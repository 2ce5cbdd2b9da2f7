package engine

import (
	"context"
	"errors"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// AccessRecorder is told each time a manifest or blob of a repository is
// served, so that eviction can find the least recently used images. Touch
// runs on the request path: it must not block or do I/O.
type AccessRecorder interface {
	Touch(repo string, d digest.Digest)
}

// WithAccessRecorder reports every manifest and blob served to r.
func WithAccessRecorder(r AccessRecorder) Option { return func(e *Engine) { e.access = r } }

// Manifest implements cache.ManifestSource.
func (e *Engine) Manifest(ctx context.Context, repo, ref string, head bool) (*cache.Manifest, error) {
	m, err := e.manifest(ctx, repo, ref, head)
	if errors.Is(err, content.ErrNotFound) {
		// Evicted between the lookup and the read: eviction removes links
		// before bytes, so a second look sees a miss.
		m, err = e.manifest(ctx, repo, ref, head)
		if errors.Is(err, content.ErrNotFound) && e.dropDangling(ctx, repo, ref) {
			m, err = e.manifest(ctx, repo, ref, head)
		}
	}
	if err == nil && e.access != nil {
		e.access.Touch(repo, m.Digest)
	}
	return m, err
}

// Blob implements cache.BlobSource.
func (e *Engine) Blob(ctx context.Context, repo string, d digest.Digest, head bool) (*cache.Blob, error) {
	b, err := e.blob(ctx, repo, d, head)
	if errors.Is(err, content.ErrNotFound) {
		b, err = e.blob(ctx, repo, d, head) // evicted meanwhile, as above
	}
	if err == nil && e.access != nil {
		e.access.Touch(repo, d)
	}
	return b, err
}

// Filling reports whether blob d is being filled from an upstream now: its
// bytes must not be collected.
func (e *Engine) Filling(d digest.Digest) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.fills[d]
	return ok
}

// Idle waits until no fill is running (for a clean shutdown), or ctx ends.
func (e *Engine) Idle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		e.mu.Lock()
		n := len(e.fills)
		e.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// dropDangling unlinks a cached manifest whose bytes are gone from the
// store (and the tag ref, if it points at it), so that the next lookup
// fetches it again. It reports whether it dropped anything.
func (e *Engine) dropDangling(ctx context.Context, repo, ref string) bool {
	if !e.resolve(repo).cached() {
		return false
	}
	d, err := digest.Parse(ref)
	tag := ""
	if err != nil {
		rec, err := e.index.Tag(ctx, repo, ref)
		if err != nil {
			return false
		}
		d, tag = rec.Digest, ref
	}
	if _, err := e.store.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		return false
	}
	e.log.Warn("manifest linked without its bytes: fetching it again", zap.String("repo", repo), zap.String("digest", d.String()))
	if err := e.index.DeleteManifest(ctx, repo, d); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return false
	}
	if tag != "" {
		if err := e.index.DeleteTag(ctx, repo, tag); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return false
		}
	}
	return true
}
