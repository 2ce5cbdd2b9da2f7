package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/manifest"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// manifest serves Manifest (see access.go).
func (e *Engine) manifest(ctx context.Context, repo, ref string, head bool) (*cache.Manifest, error) {
	if !rules.ValidRepository(repo) {
		return nil, fmt.Errorf("%w: %q", cache.ErrNameInvalid, repo)
	}
	if d, err := digest.Parse(ref); err == nil {
		return e.manifestByDigest(ctx, repo, d, head)
	}
	if !reference.ValidTag(ref) {
		return nil, fmt.Errorf("%w: %q", cache.ErrTagInvalid, ref)
	}
	return e.manifestByTag(ctx, repo, ref, head)
}

func (e *Engine) manifestByTag(ctx context.Context, repo, tag string, head bool) (*cache.Manifest, error) {
	t := e.resolve(repo)
	rec, err := e.index.Tag(ctx, repo, tag)
	switch {
	case err == nil:
		if !t.cached() || rec.Origin == meta.OriginPush || e.now().Sub(rec.FetchedAt) < e.ttl(t) {
			e.m.hits.WithLabelValues(t.rule, "manifest").Inc()
			return e.local(ctx, rec.Digest, rec.MediaType, rec.Size, head)
		}
		return e.revalidate(ctx, repo, tag, t, rec, head)
	case !errors.Is(err, meta.ErrNotFound):
		return nil, err
	case !t.cached():
		return nil, e.unknown(ctx, repo, cache.ErrManifestUnknown, tag)
	}
	e.missed(ctx, "manifest")
	return e.fetchManifest(ctx, repo, tag, t, head)
}

// local serves a stored manifest.
func (e *Engine) local(ctx context.Context, d digest.Digest, mt string, size int64, head bool) (*cache.Manifest, error) {
	m := &cache.Manifest{Digest: d, MediaType: mt, Size: size}
	if head {
		return m, nil
	}
	if body, ok := e.bodies.get(d); ok {
		m.Body = body
		return m, nil
	}
	body, err := content.ReadAll(ctx, e.store, d)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	e.bodies.put(d, body)
	m.Body = body
	return m, nil
}

func (e *Engine) serveFetched(m upstream.Manifest, head bool) *cache.Manifest {
	out := &cache.Manifest{Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, FromUpstream: true}
	if !head {
		out.Body = m.Body
	}
	return out
}

// revalidate checks a stale tag with a HEAD; it fetches only if the digest
// moved, and serves the stale copy if the upstream fails.
func (e *Engine) revalidate(ctx context.Context, repo, tag string, t target, rec meta.Tag, head bool) (*cache.Manifest, error) {
	v, shared, err := e.flights.Do(ctx, "revalidate\x00"+repo+"\x00"+tag, func() (any, error) {
		fctx, cancel := detached(ctx, e.revalidateTimeout)
		defer cancel()
		if now, ok := e.storedManifest(fctx, repo, tag, t); ok {
			return now, nil // revalidated (or moved) just before this began
		}
		if v, ok, err := e.revalidateWithOwner(fctx, repo, tag, rec); ok {
			return v, err
		}
		e.m.upstream(t.rule, "manifest", "HEAD")
		h, err := e.up.Manifest(fctx, t.repo, tag, true)
		if err != nil {
			return nil, err
		}
		if h.Digest == rec.Digest {
			rec.FetchedAt = e.now()
			// Again if it raced a collection: a tag left pointing at a
			// manifest that collection evicted is fetched again (dangling).
			if err := relink(func() error { return e.index.PutTag(fctx, repo, tag, rec) }); err != nil {
				return nil, err
			}
			return nil, nil
		}
		return e.fetchManifestNow(fctx, repo, tag, t)
	})
	if shared {
		e.m.coalesced.WithLabelValues(t.rule, "manifest").Inc()
	}
	if now, ok := v.(meta.Tag); ok && err == nil {
		rec, v = now, nil
	}
	switch {
	case err == nil && v == nil:
		e.m.hits.WithLabelValues(t.rule, "manifest").Inc()
		return e.local(ctx, rec.Digest, rec.MediaType, rec.Size, head)
	case err == nil:
		return e.serveFetched(v.(upstream.Manifest), head), nil
	case errors.Is(err, upstream.ErrNotFound):
		// The upstream is authoritative for its tags: it no longer has it.
		if derr := e.index.DeleteTag(ctx, repo, tag); derr != nil && !errors.Is(derr, meta.ErrNotFound) {
			e.log.Warn("drop tag deleted upstream", zap.String("repo", repo), zap.String("tag", tag), zap.Error(derr))
		}
		return nil, fmt.Errorf("%w: %s:%s (deleted upstream)", cache.ErrManifestUnknown, repo, tag)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	e.m.stale.WithLabelValues(t.rule).Inc()
	e.log.Warn("serving stale tag: upstream failed", zap.String("repo", repo), zap.String("tag", tag), zap.Error(err))
	return e.local(ctx, rec.Digest, rec.MediaType, rec.Size, head)
}

// fetchManifest fetches ref (a tag or digest) once however many ask.
func (e *Engine) fetchManifest(ctx context.Context, repo, ref string, t target, head bool) (*cache.Manifest, error) {
	v, shared, err := e.flights.Do(ctx, "manifest\x00"+repo+"\x00"+ref, func() (any, error) {
		// A fetch of ref that ended just before this one began has stored
		// it: this request missed the index before that.
		fctx, cancel := detached(ctx, e.fillTimeout)
		defer cancel()
		if rec, ok := e.storedManifest(fctx, repo, ref, t); ok {
			return rec, nil
		}
		if m, ok, err := e.fromOwner(fctx, repo, ref); ok {
			return m, err
		}
		return e.fetchManifestNow(fctx, repo, ref, t)
	})
	kind := "manifest"
	rec, stored := v.(meta.Tag)
	switch {
	case shared:
		e.m.coalesced.WithLabelValues(t.rule, kind).Inc()
	case stored:
		e.m.hits.WithLabelValues(t.rule, kind).Inc()
	default:
		e.m.misses.WithLabelValues(t.rule, kind).Inc()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, upstreamErr(err, cache.ErrManifestUnknown, repo+":"+ref)
	}
	if stored {
		return e.local(ctx, rec.Digest, rec.MediaType, rec.Size, head)
	}
	return e.serveFetched(v.(upstream.Manifest), head), nil
}

// storedManifest looks ref up in the index: a manifest by digest, or a tag
// still fresh.
func (e *Engine) storedManifest(ctx context.Context, repo, ref string, t target) (meta.Tag, bool) {
	if d, err := digest.Parse(ref); err == nil {
		m, err := e.index.Manifest(ctx, repo, d)
		return meta.Tag{Digest: d, MediaType: m.MediaType, Size: m.Size}, err == nil
	}
	rec, err := e.index.Tag(ctx, repo, ref)
	return rec, err == nil && (rec.Origin == meta.OriginPush || e.now().Sub(rec.FetchedAt) < e.ttl(t))
}

// fetchManifestNow GETs a manifest, verifies and stores it, and links it
// (and the tag, when ref is a tag) to repo.
func (e *Engine) fetchManifestNow(ctx context.Context, repo, ref string, t target) (upstream.Manifest, error) {
	e.m.upstream(t.rule, "manifest", "GET")
	m, err := e.up.Manifest(ctx, t.repo, ref, false)
	if err != nil {
		return upstream.Manifest{}, err
	}
	if int64(len(m.Body)) > e.maxManifest {
		return upstream.Manifest{}, fmt.Errorf("%w: manifest %s is larger than %d bytes", errBadUpstream, ref, e.maxManifest)
	}
	p, err := manifest.Parse(m.Body, m.MediaType)
	if err != nil {
		return upstream.Manifest{}, fmt.Errorf("%w: manifest %s: %v", errBadUpstream, ref, err)
	}
	if m.MediaType == "" {
		m.MediaType = p.MediaType
	}
	// The client verified the body against the digest; the store checks again.
	if _, err := content.WriteBlob(ctx, e.store, m.Digest, m.Body); errors.Is(err, content.ErrNoRoom) {
		e.m.uncached.WithLabelValues(t.rule, "manifest").Inc()
		e.log.Warn("no room for the manifest within the storage quota: serving it without keeping it",
			zap.String("upstream", t.repo.String()), zap.String("digest", m.Digest.String()), zap.Error(err))
		return m, nil
	} else if err != nil {
		return upstream.Manifest{}, err
	}
	now := e.now()
	rec := meta.Manifest{MediaType: m.MediaType, Size: m.Size, ArtifactType: p.ArtifactType, Subject: p.SubjectDigest(), Refs: p.Refs(), Origin: meta.OriginCache, Added: now}
	tag := ""
	if _, err := digest.Parse(ref); err != nil {
		tag = ref
	}
	e.m.upBytes.WithLabelValues(t.rule).Add(float64(len(m.Body)))
	// Again if it raced a collection: the bytes were written just now, and
	// keepLinked writes them again if a collection took them meanwhile.
	err = relink(func() error {
		return e.index.PutManifest(ctx, repo, m.Digest, rec, tag, meta.Tag{Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, FetchedAt: now, Origin: meta.OriginCache})
	})
	if err != nil {
		return upstream.Manifest{}, err
	}
	e.keepLinked(ctx, m)
	return m, nil
}

// keepLinked writes m's bytes again if a collection deleted them while
// the link waited for it: writing bytes does not wait for a collection,
// linking does, so a collection may find the bytes unreferenced, and
// delete them, between the write and the link. Once linked, the next
// collection keeps them.
func (e *Engine) keepLinked(ctx context.Context, m upstream.Manifest) {
	if _, err := e.store.Stat(ctx, m.Digest); !errors.Is(err, content.ErrNotFound) {
		return
	}
	if _, err := content.WriteBlob(ctx, e.store, m.Digest, m.Body); err != nil {
		// The link stays without bytes; the next request for it drops
		// the link and fetches again (dropDangling).
		e.log.Warn("write again a manifest collected while it was linked", zap.String("digest", m.Digest.String()), zap.Error(err))
	}
}

func (e *Engine) manifestByDigest(ctx context.Context, repo string, d digest.Digest, head bool) (*cache.Manifest, error) {
	t := e.resolve(repo)
	rec, err := e.index.Manifest(ctx, repo, d)
	if err == nil {
		e.m.hits.WithLabelValues(t.rule, "manifest").Inc()
		return e.local(ctx, d, rec.MediaType, rec.Size, head)
	}
	if !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	if !t.cached() {
		return nil, e.unknown(ctx, repo, cache.ErrManifestUnknown, d.String())
	}
	e.missed(ctx, "manifest")
	return e.fetchManifest(ctx, repo, d.String(), t, head)
}
