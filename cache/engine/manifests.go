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
	m, err := e.fetchManifest(ctx, repo, tag, t)
	if err != nil {
		return nil, err
	}
	return e.serveFetched(m, head), nil
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
	v, shared, err := e.flights.do(ctx, "revalidate\x00"+repo+"\x00"+tag, func() (any, error) {
		fctx, cancel := detached(ctx, e.revalidateTimeout)
		defer cancel()
		e.m.upstream(t.rule, "manifest", "HEAD")
		h, err := e.up.Manifest(fctx, t.repo, tag, true)
		if err != nil {
			return nil, err
		}
		if h.Digest == rec.Digest {
			rec.FetchedAt = e.now()
			if err := e.index.PutTag(fctx, repo, tag, rec); err != nil {
				return nil, err
			}
			return nil, nil
		}
		return e.fetchManifestNow(fctx, repo, tag, t)
	})
	if shared {
		e.m.coalesced.WithLabelValues(t.rule, "manifest").Inc()
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
func (e *Engine) fetchManifest(ctx context.Context, repo, ref string, t target) (upstream.Manifest, error) {
	v, shared, err := e.flights.do(ctx, "manifest\x00"+repo+"\x00"+ref, func() (any, error) {
		fctx, cancel := detached(ctx, e.fillTimeout)
		defer cancel()
		return e.fetchManifestNow(fctx, repo, ref, t)
	})
	kind := "manifest"
	if shared {
		e.m.coalesced.WithLabelValues(t.rule, kind).Inc()
	} else {
		e.m.misses.WithLabelValues(t.rule, kind).Inc()
	}
	if err != nil {
		if ctx.Err() != nil {
			return upstream.Manifest{}, ctx.Err()
		}
		return upstream.Manifest{}, upstreamErr(err, cache.ErrManifestUnknown, repo+":"+ref)
	}
	return v.(upstream.Manifest), nil
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
	if _, err := content.WriteBlob(ctx, e.store, m.Digest, m.Body); err != nil {
		return upstream.Manifest{}, err
	}
	now := e.now()
	rec := meta.Manifest{MediaType: m.MediaType, Size: m.Size, ArtifactType: p.ArtifactType, Subject: p.SubjectDigest(), Refs: p.Refs(), Origin: meta.OriginCache, Added: now}
	tag := ""
	if _, err := digest.Parse(ref); err != nil {
		tag = ref
	}
	e.m.upBytes.WithLabelValues(t.rule).Add(float64(len(m.Body)))
	err = e.index.PutManifest(ctx, repo, m.Digest, rec, tag, meta.Tag{Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, FetchedAt: now, Origin: meta.OriginCache})
	if err != nil {
		return upstream.Manifest{}, err
	}
	return m, nil
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
	m, err := e.fetchManifest(ctx, repo, d.String(), t)
	if err != nil {
		return nil, err
	}
	return e.serveFetched(m, head), nil
}
