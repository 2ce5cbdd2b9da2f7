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
	// A peer relays a blob request of a cached repository to this replica
	// (its owner) only after its own index missed: go to the store, which
	// is asked anyway, without reading the index first. A blob linked
	// meanwhile is found there, and the index is read then.
	if !t.cached() || !e.relayed(ctx) {
		if b, served, err := e.linked(ctx, repo, d, t, head); served || err != nil {
			return b, err
		}
	}
	if !t.cached() {
		return nil, e.unknown(ctx, repo, cache.ErrBlobUnknown, d.String())
	}
	e.missed(ctx, "blob")
	// Being filled from the same upstream repository, or for this
	// repository already: join at once.
	c, filling := e.fills.Get(d)
	if filling && joinable(c.Val, repo, t) {
		return e.fromFill(ctx, c.Val, repo, t, head)
	}
	seen := e.fills.Ended()
	if !filling && !head && e.peerFor(ctx, d.String()) != "" {
		// A cold GET on a replica that does not own the digest goes to
		// the owner without asking the store here: the owner asks it
		// for the relayed request (and serves a blob held for another
		// repository only once the upstream confirms this one has it),
		// so asking here as well would only put a store round trip
		// before the first byte. A fill of this replica that committed
		// d meanwhile is still looked for (the Ended count); the relay
		// fill finds the rest (the owner serves it, or a claim taken
		// when the owner is gone sees it committed and confirms it).
		return e.joinFill(ctx, repo, d, t, absence{known: true, seen: seen})
	}
	_, storeErr := e.statShared(ctx, d)
	if storeErr == nil && !filling {
		// Committed and no fill seen: a fill of this blob for this very
		// repository may have committed, linked it and left since the
		// index was read. A fill leaves the group only after linking, so
		// look at the group and then at the index again, in this order.
		if c, filling = e.fills.Get(d); filling && joinable(c.Val, repo, t) {
			return e.fromFill(ctx, c.Val, repo, t, head)
		}
		if !filling {
			if _, err := e.index.Blob(ctx, repo, d); err == nil {
				if b, err := e.open(ctx, d, head); err == nil {
					e.m.hits.WithLabelValues(t.rule, "blob").Inc()
					return b, nil
				}
			}
		}
	}
	// Held locally for another repository, or being filled for one: the
	// upstream must confirm this repository has it before it is shared.
	if storeErr == nil || filling || head {
		size, err := e.confirm(ctx, repo, d, t)
		if err != nil {
			return nil, upstreamErr(err, cache.ErrBlobUnknown, repo+"@"+d.String())
		}
		e.missed(ctx, "confirmed")
		if storeErr == nil {
			if b, err := e.open(ctx, d, head); err == nil {
				e.m.hits.WithLabelValues(t.rule, "blob").Inc()
				return b, nil
			}
		}
		if head {
			return &cache.Blob{Digest: d, Size: size, FromUpstream: true}, nil
		}
	}
	// On a cluster the store's answer just read need not be asked again
	// when the fill slot is taken, unless a fill of this replica ended
	// meanwhile (one that committed d would be gone from the group by
	// then): a blob another replica committed in between is found by the
	// fill itself (its owner serves it, or the claim sees it committed).
	var absent absence
	if e.cluster != nil && !filling && errors.Is(storeErr, content.ErrNotFound) {
		absent = absence{known: true, seen: seen}
	}
	return e.joinFill(ctx, repo, d, t, absent)
}

// statShared asks the store for d once for every cold request that asks
// at once: the nodes of a storm miss the index together, and on Azure
// each Stat is a request that queues before the fill's own.
func (e *Engine) statShared(ctx context.Context, d digest.Digest) (content.Info, error) {
	v, _, err := e.flights.Do(ctx, "stat\x00"+d.String(), func() (any, error) {
		fctx, cancel := detached(ctx, e.revalidateTimeout)
		defer cancel()
		return e.store.Stat(fctx, d)
	})
	if err != nil {
		return content.Info{}, err
	}
	return v.(content.Info), nil
}

// linked serves repo's blob d if the index links it and the store has it
// (served). A link to a blob gone from the store (evicted or lost) is
// dropped: fill again.
func (e *Engine) linked(ctx context.Context, repo string, d digest.Digest, t target, head bool) (b *cache.Blob, served bool, err error) {
	if _, err := e.index.Blob(ctx, repo, d); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			err = nil
		}
		return nil, false, err
	}
	b, err = e.open(ctx, d, head)
	if err == nil {
		e.m.hits.WithLabelValues(t.rule, "blob").Inc()
		return b, true, nil
	}
	if !errors.Is(err, content.ErrNotFound) {
		return nil, false, err
	}
	if err := e.index.UnlinkBlob(ctx, repo, d); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return nil, false, err
	}
	return nil, false, nil
}

// joinable reports whether a request for repo may follow fill f without
// asking the upstream: f fetches from the same upstream repository, or is
// known to be for repo already.
func joinable(f *fill, repo string, t target) bool {
	return f.target.repo == t.repo || f.hasRepo(repo)
}

// fromFill answers from a running fill: a GET follows it, a HEAD waits
// only for its size (the upstream's answer, as a HEAD upstream would give).
func (e *Engine) fromFill(ctx context.Context, f *fill, repo string, t target, head bool) (*cache.Blob, error) {
	if !head {
		return e.joinFill(ctx, repo, f.d, t, absence{})
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	size, ferr := f.size, f.err
	f.mu.Unlock()
	if ferr != nil {
		return nil, upstreamErr(ferr, cache.ErrBlobUnknown, repo+"@"+f.d.String())
	}
	e.m.coalesced.WithLabelValues(t.rule, "blob").Inc()
	return &cache.Blob{Digest: f.d, Size: size, FromUpstream: true}, nil
}

// confirm asks the upstream (one HEAD however many ask at once) whether
// repo has the blob d, and returns its size. Before the next confirmation
// can start, repo is linked to the blob if the store holds it, or added to
// the fill running for it: a request that comes after finds the link or
// joins the fill, and asks nothing.
func (e *Engine) confirm(ctx context.Context, repo string, d digest.Digest, t target) (int64, error) {
	v, _, err := e.flights.Do(ctx, "confirm\x00"+repo+"\x00"+d.String(), func() (any, error) {
		fctx, cancel := detached(ctx, e.revalidateTimeout)
		defer cancel()
		if _, err := e.index.Blob(fctx, repo, d); err == nil {
			if info, err := e.store.Stat(fctx, d); err == nil {
				return info.Size, nil // confirmed and linked just before
			}
		}
		size, err := e.statBlob(fctx, repo, d, t)
		if err != nil {
			return nil, err
		}
		// A fill running now links repo with the others it fills for;
		// requests that come after join it without asking.
		if c, ok := e.fills.Get(d); ok && c.Val.addRepo(repo) {
			return size, nil
		}
		if _, err := e.store.Stat(fctx, d); err == nil {
			if err := e.index.LinkBlob(fctx, repo, d, meta.Blob{Size: size, Origin: meta.OriginCache, Added: e.now()}); err != nil {
				return nil, err
			}
		}
		return size, nil
	})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}

// statBlob asks for the size of repo's blob d: the digest's owner, or the
// upstream when this replica owns it (or the owner is gone).
func (e *Engine) statBlob(ctx context.Context, repo string, d digest.Digest, t target) (int64, error) {
	if peer := e.peerFor(ctx, d.String()); peer != "" {
		b, err := e.cluster.Blob(ctx, peer, repo, d, 0, true)
		if !peerGone(err) {
			return b.Size, err
		}
		e.log.Info("blob owner unreachable: asking the upstream", zap.String("owner", peer), zap.String("digest", d.String()), zap.Error(err))
	}
	return e.statUpstream(ctx, t, d)
}

// statUpstream asks the upstream for the size of t's blob d (a counted
// HEAD).
func (e *Engine) statUpstream(ctx context.Context, t target, d digest.Digest) (int64, error) {
	e.m.upstream(t.rule, "blob", "HEAD")
	return e.up.StatBlob(ctx, t.repo, d)
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

// errCommitted is how joinFill learns, under the fill group's lock, that the
// blob is in the store already.
var errCommitted = errors.New("blob committed")

// absence is what a request knows of d's absence from the store: known
// when the store said it does not hold d after the fill group's Ended
// count was seen (the zero value: nothing known).
type absence struct {
	known bool
	seen  uint64
}

// joinFill attaches the request to the fill of d, starting it if none runs.
func (e *Engine) joinFill(ctx context.Context, repo string, d digest.Digest, t target, absent absence) (*cache.Blob, error) {
	for {
		c, leader, err := e.fills.BeginAfter(d, absent.seen, func(endedSince bool) (*fill, error) {
			// A fill leaves the group only after its commit: check the store
			// again so that a fill finishing just now is not repeated
			// (unless the store said no and no fill has ended since).
			if !absent.known || endedSince {
				if _, err := e.store.Stat(ctx, d); err == nil {
					return nil, errCommitted
				}
			}
			f := newFill(d, t)
			f.repos[repo] = true
			f.origin = repo
			f.relayed = e.relayed(ctx)
			f.acquire() // the leader's reference, released when the fill ends
			return f, nil
		})
		if errors.Is(err, errCommitted) {
			if err := e.index.LinkBlob(ctx, repo, d, meta.Blob{Origin: meta.OriginCache, Added: e.now()}); err != nil {
				return nil, err
			}
			return e.open(ctx, d, false)
		}
		f := c.Val
		r, res := f.join(ctx) // before the fill starts: a pass-through stops when nobody follows it
		if leader {
			e.m.misses.WithLabelValues(t.rule, "blob").Inc()
			go e.runFill(f, c)
		}
		switch res {
		case joinedEnded:
			// It ended and let go of its bytes after this request found it.
			if ferr := f.failure(); ferr != nil {
				return nil, upstreamErr(ferr, cache.ErrBlobUnknown, repo+"@"+d.String())
			}
			absent = absence{}
			continue // committed: the store has it now
		case joinedLate:
			return e.privateFill(ctx, repo, d, t)
		}
		if !leader {
			e.m.coalesced.WithLabelValues(t.rule, "blob").Inc()
		}
		return e.followFill(ctx, f, r, repo, !leader)
	}
}

// privateFill serves the request from a fill of its own, which no other
// request joins: the fill of d passes it through and has moved past its
// first bytes. If the store has room by now, the blob is kept.
func (e *Engine) privateFill(ctx context.Context, repo string, d digest.Digest, t target) (*cache.Blob, error) {
	f := newFill(d, t)
	f.private = true
	f.repos[repo] = true
	f.acquire()
	r, _ := f.join(ctx)
	e.m.misses.WithLabelValues(t.rule, "blob").Inc()
	e.private.Add(1)
	go e.runFill(f, nil)
	return e.followFill(ctx, f, r, repo, false)
}

// followFill serves the request from fill f, which it follows with r.
func (e *Engine) followFill(ctx context.Context, f *fill, r *fillReader, repo string, joined bool) (*cache.Blob, error) {
	d := f.d
	if joined && !f.addRepo(repo) {
		if err := e.index.LinkBlob(ctx, repo, d, meta.Blob{Size: f.written, Origin: meta.OriginCache, Added: e.now()}); err != nil {
			e.log.Warn("link blob", zap.Error(err))
		}
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		r.Close()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	size, ferr := f.size, f.err
	f.mu.Unlock()
	if ferr != nil {
		// Failed before this request sent anything: answer with an error.
		r.Close()
		return nil, upstreamErr(ferr, cache.ErrBlobUnknown, repo+"@"+d.String())
	}
	return &cache.Blob{
		Digest:       d,
		Size:         size,
		Content:      r,
		Wait:         f.wait,
		FromUpstream: true,
	}, nil
}
