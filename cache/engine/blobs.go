package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/rules"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// blob serves Blob (see access.go).
func (e *Engine) blob(ctx context.Context, repo string, d digest.Digest, head bool) (*cache.Blob, error) {
	if !rules.ValidRepository(repo) {
		return nil, fmt.Errorf("%w: %q", cache.ErrNameInvalid, repo)
	}
	if err := content.ValidateDigest(d); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", cache.ErrDigestInvalid, d, err)
	}
	t := e.resolve(repo)
	if _, err := e.index.Blob(ctx, repo, d); err == nil {
		b, err := e.open(ctx, d, head)
		if err == nil {
			e.m.hits.WithLabelValues(t.rule, "blob").Inc()
			return b, nil
		}
		if !errors.Is(err, content.ErrNotFound) {
			return nil, err
		}
		// Linked but gone from the store (evicted or lost): fill again.
		if uerr := e.index.UnlinkBlob(ctx, repo, d); uerr != nil && !errors.Is(uerr, meta.ErrNotFound) {
			return nil, uerr
		}
	} else if !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	if !t.cached() {
		return nil, e.unknown(ctx, repo, cache.ErrBlobUnknown, d.String())
	}
	// Being filled from the same upstream repository, or for this
	// repository already: join at once.
	e.mu.Lock()
	f, filling := e.fills[d]
	e.mu.Unlock()
	if filling && !head && (f.target.repo == t.repo || f.hasRepo(repo)) {
		return e.joinFill(ctx, repo, d, t)
	}
	// Held locally for another repository, or being filled for one: the
	// upstream must confirm this repository has it before it is shared.
	_, storeErr := e.store.Stat(ctx, d)
	if storeErr == nil || filling || head {
		size, err := e.confirm(ctx, repo, d, t)
		if err != nil {
			return nil, upstreamErr(err, cache.ErrBlobUnknown, repo+"@"+d.String())
		}
		if storeErr == nil {
			if err := e.index.LinkBlob(ctx, repo, d, meta.Blob{Size: size, Origin: meta.OriginCache, Added: e.now()}); err != nil {
				return nil, err
			}
			if b, err := e.open(ctx, d, head); err == nil {
				e.m.hits.WithLabelValues(t.rule, "blob").Inc()
				return b, nil
			}
		}
		if head {
			return &cache.Blob{Digest: d, Size: size, FromUpstream: true}, nil
		}
	}
	return e.joinFill(ctx, repo, d, t)
}

// confirm asks the upstream (one HEAD however many ask at once) whether
// repo has the blob d, and returns its size.
func (e *Engine) confirm(ctx context.Context, repo string, d digest.Digest, t target) (int64, error) {
	v, _, err := e.flights.do(ctx, "confirm\x00"+repo+"\x00"+d.String(), func() (any, error) {
		fctx, cancel := detached(ctx, e.revalidateTimeout)
		defer cancel()
		e.m.upstream(t.rule, "blob", "HEAD")
		return e.up.StatBlob(fctx, t.repo, d)
	})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}

// open serves a committed blob from the store.
func (e *Engine) open(ctx context.Context, d digest.Digest, head bool) (*cache.Blob, error) {
	if head {
		info, err := e.store.Stat(ctx, d)
		if err != nil {
			return nil, err
		}
		return &cache.Blob{Digest: d, Size: info.Size, ModTime: info.ModTime}, nil
	}
	rc, info, err := e.store.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	return &cache.Blob{Digest: d, Size: info.Size, ModTime: info.ModTime, Content: rc}, nil
}

// joinFill attaches the request to the fill of d, starting it if none runs.
func (e *Engine) joinFill(ctx context.Context, repo string, d digest.Digest, t target) (*cache.Blob, error) {
	e.mu.Lock()
	f, running := e.fills[d]
	if !running {
		// A fill leaves the map only after its commit: check the store again
		// so that a fill finishing just now is not repeated.
		if _, err := e.store.Stat(ctx, d); err == nil {
			e.mu.Unlock()
			if err := e.index.LinkBlob(ctx, repo, d, meta.Blob{Origin: meta.OriginCache, Added: e.now()}); err != nil {
				return nil, err
			}
			return e.open(ctx, d, false)
		}
		f = newFill(d, t)
		f.repos[repo] = true
		f.acquire() // the leader's reference, released when the fill ends
		e.fills[d] = f
		e.m.misses.WithLabelValues(t.rule, "blob").Inc()
		go e.runFill(f, repo)
	} else {
		e.m.coalesced.WithLabelValues(t.rule, "blob").Inc()
	}
	f.acquire()
	e.mu.Unlock()

	if running {
		f.mu.Lock()
		committed := f.ended && f.err == nil
		f.repos[repo] = true
		f.mu.Unlock()
		if committed {
			if err := e.index.LinkBlob(ctx, repo, d, meta.Blob{Size: f.size, Origin: meta.OriginCache, Added: e.now()}); err != nil {
				e.log.Warn("link blob", zap.Error(err))
			}
		}
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		f.release()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	size, ferr := f.size, f.err
	f.mu.Unlock()
	if ferr != nil {
		// Failed before this request sent anything: answer with an error.
		f.release()
		return nil, upstreamErr(ferr, cache.ErrBlobUnknown, repo+"@"+d.String())
	}
	return &cache.Blob{
		Digest:       d,
		Size:         size,
		Content:      &fillReader{f: f, ctx: ctx},
		Wait:         f.wait,
		FromUpstream: true,
	}, nil
}
