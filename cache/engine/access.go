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
		if errors.Is(err, content.ErrNotFound) {
			// Still linked without its bytes: drop the link, unless the
			// bytes are back by now, and look once more. Either way the
			// third look finds the bytes or misses and fetches them; it
			// never fails because another request healed the link first.
			e.dropDangling(ctx, repo, ref)
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
	_, ok := e.fills.Get(d)
	return ok
}

// Idle waits until no fill is running (for a clean shutdown), or ctx ends.
func (e *Engine) Idle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if e.fills.Len() == 0 && e.private.Load() == 0 {
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
// fetches it again. Bytes that are back (another request fetched them
// meanwhile) keep the link. A request that heals the link between the
// check and the removal loses it again, and the next lookup fetches it
// once more: it costs an upstream request, never a failure or a link
// without bytes.
func (e *Engine) dropDangling(ctx context.Context, repo, ref string) {
	if !e.resolve(repo).cached() {
		return
	}
	d, err := digest.Parse(ref)
	tag := ""
	if err != nil {
		rec, err := e.index.Tag(ctx, repo, ref)
		if err != nil {
			return
		}
		d, tag = rec.Digest, ref
	}
	if _, err := e.store.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		return
	}
	e.log.Warn("manifest linked without its bytes: fetching it again", zap.String("repo", repo), zap.String("digest", d.String()))
	if err := e.index.DeleteManifest(ctx, repo, d); err != nil && !errors.Is(err, meta.ErrNotFound) {
		e.log.Warn("drop a manifest link without bytes", zap.String("repo", repo), zap.String("digest", d.String()), zap.Error(err))
		return
	}
	if tag != "" {
		if err := e.index.DeleteTag(ctx, repo, tag); err != nil && !errors.Is(err, meta.ErrNotFound) {
			e.log.Warn("drop a tag of a manifest without bytes", zap.String("repo", repo), zap.String("tag", tag), zap.Error(err))
		}
	}
}
