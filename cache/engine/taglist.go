package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/upstream"
	"go.uber.org/zap"
)

// defaultTagListBytes bounds the upstream tag listings kept in memory.
const defaultTagListBytes = 16 << 20

// tagListing is an upstream repository's tags as last fetched: sorted,
// without duplicates or names that are not valid tags. missing is true
// when the upstream did not know the repository.
type tagListing struct {
	tags      []string
	missing   bool
	fetchedAt time.Time
}

func (l tagListing) cost() int64 {
	n := int64(64)
	for _, t := range l.tags {
		n += int64(len(t)) + 16
	}
	return n
}

// unionTags lists the tags of repo under a rule whose listing includes the
// upstream's: the union of the upstream's tags and the local ones, sorted,
// paged with last and n. Without an upstream listing (the upstream failed
// and none was fetched before) it lists the local tags, or fails with the
// upstream's error when there are none: never "unknown" for a repository
// the upstream may have.
func (e *Engine) unionTags(ctx context.Context, repo, last string, n int, t target) ([]string, bool, error) {
	local, _, err := e.index.Tags(ctx, repo, "", 0)
	if err != nil {
		return nil, false, err
	}
	up, err := e.upstreamTags(ctx, t)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, false, ctx.Err()
	case len(local) > 0:
		e.log.Warn("listing local tags only: upstream listing failed", zap.String("repo", repo), zap.Error(err))
	default:
		return nil, false, upstreamErr(err, cache.ErrNameUnknown, repo)
	}
	all := union(up.tags, local)
	if len(all) == 0 && up.missing {
		switch _, err := e.index.Repo(ctx, repo); {
		case errors.Is(err, meta.ErrNotFound):
			return nil, false, fmt.Errorf("%w: %s", cache.ErrNameUnknown, repo)
		case err != nil:
			return nil, false, err
		}
	}
	page, more := pageOf(all, last, n)
	return page, more, nil
}

// upstreamTags returns the upstream's listing for t, fetched at most once
// per tag TTL however many ask at once; past the TTL, if the upstream
// fails, the last listing is served stale. Listings are kept in memory,
// keyed by upstream repository and user: a restart costs one listing per
// repository, and content the index holds does not depend on them.
func (e *Engine) upstreamTags(ctx context.Context, t target) (tagListing, error) {
	key := t.repo.String() + "\x00" + t.repo.Auth.Username
	ttl := e.ttl(t)
	cached, have := e.tagLists.get(key)
	if have && e.now().Sub(cached.fetchedAt) < ttl {
		return cached, nil
	}
	v, _, err := e.flights.Do(ctx, "tags\x00"+key, func() (any, error) {
		if l, ok := e.tagLists.get(key); ok && e.now().Sub(l.fetchedAt) < ttl {
			return l, nil // fetched just before this began
		}
		fctx, cancel := detached(ctx, e.revalidateTimeout)
		defer cancel()
		e.m.upstream(t.rule, "tags", "GET")
		tags, err := e.up.Tags(fctx, t.repo)
		l := tagListing{fetchedAt: e.now()}
		switch {
		case errors.Is(err, upstream.ErrNotFound):
			l.missing = true
		case err != nil:
			return nil, err
		default:
			l.tags = validTags(tags)
		}
		e.tagLists.put(key, l)
		return l, nil
	})
	switch {
	case err == nil:
		return v.(tagListing), nil
	case ctx.Err() != nil:
		return tagListing{}, ctx.Err()
	case have:
		e.m.stale.WithLabelValues(t.rule).Inc()
		e.log.Warn("serving a stale upstream tag listing: upstream failed", zap.String("upstream", t.repo.String()), zap.Error(err))
		return cached, nil
	}
	return tagListing{}, err
}

// validTags sorts tags and drops duplicates and names that are not tags.
func validTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if reference.ValidTag(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// union merges two sorted lists without duplicates.
func union(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// pageOf returns the entries of a sorted list after last, at most n (n <= 0:
// all), and whether more follow.
func pageOf(all []string, last string, n int) ([]string, bool) {
	if last != "" {
		all = all[sort.Search(len(all), func(i int) bool { return all[i] > last }):]
	}
	if n > 0 && len(all) > n {
		return all[:n], true
	}
	return all, false
}
