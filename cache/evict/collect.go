package evict

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// plan loads the index and decides what to evict: past the high
// watermark, the least recently used images down to the low one; for need
// bytes more, as many as it takes to fit them beside the store and the
// reservations, but none if even that would not make room (nothing is
// evicted in vain). Nothing read since keepRead is evicted (zero: no such
// rule).
func (c *Collector) plan(ctx context.Context, p *policy, used, need int64, sizes map[digest.Digest]int64, keepRead time.Time) (*model, *plan, error) {
	m, err := c.load(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	none := &plan{freed: map[digest.Digest]bool{}}
	if p.MaxBytes == 0 {
		return m, none, nil
	}
	if reserved := c.reservedBytes(); need > 0 && used+reserved+need > p.MaxBytes {
		pl := m.evict(used, min(p.low(), p.MaxBytes-reserved-need), sizes, keepRead)
		if used-pl.bytes+reserved+need <= p.MaxBytes {
			return m, pl, nil
		}
		if m, err = c.load(ctx, p); err != nil { // start again from the index as it is
			return nil, nil, err
		}
	}
	if used > p.high() {
		return m, m.evict(used, p.low(), sizes, keepRead), nil
	}
	return m, none, nil
}

// Report is what one collection found and did.
type Report struct {
	Before, After int64 // store bytes
	Quota         int64
	// EvictedImages counts images (root manifests with what only they
	// needed) and orphan blob links evicted; EvictedBytes the bytes that
	// freed.
	EvictedImages int
	EvictedBytes  int64
	// DeletedBlobs and DeletedBytes count blob files deleted: evicted, or
	// referenced by nothing for longer than the grace period.
	DeletedBlobs int
	DeletedBytes int64
	PinnedBytes  int64
	PushedBytes  int64
	Took         time.Duration
}

// Collect runs one collection now: when the store is over the high
// watermark it evicts least recently used images until it is under the low
// one; in any case it deletes blob files nothing references. Serving goes
// on meanwhile; only link writes (fills finishing, tags moving) wait while
// the collector decides and deletes. With WithCluster it first waits for
// the replicas' reads to reach the shared access log (cluster.go).
func (c *Collector) Collect(ctx context.Context) (Report, error) {
	began, err := c.settleReads(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("evict: %w", err)
	}
	c.passMu.Lock()
	defer c.passMu.Unlock()
	return c.collect(ctx, 0, began)
}

// walked is what a walk of the store found.
type walked struct {
	files map[digest.Digest]content.Info
	sizes map[digest.Digest]int64
	total int64
}

// walk lists the store and makes its size the estimate of Used. Commits
// during the walk stay counted (the walk may count them again): the
// estimate may run over, never under.
func (c *Collector) walk(ctx context.Context) (walked, error) {
	before := c.pending.Load()
	w := walked{files: map[digest.Digest]content.Info{}, sizes: map[digest.Digest]int64{}}
	err := c.store.Walk(ctx, func(info content.Info) error {
		w.files[info.Digest] = info
		w.sizes[info.Digest] = info.Size
		w.total += info.Size
		return nil
	})
	if err != nil {
		return w, fmt.Errorf("walk store: %w", err)
	}
	c.walked.Store(w.total)
	c.pending.Add(-before)
	c.walkedOnce.Store(true)
	return w, nil
}

// collect is one collection; it also evicts, past the high watermark or
// not, until need more bytes fit within the quota beside the reservations
// of writes in progress (quota.go). began is when the collection began,
// for the read grace (cluster.go). The caller holds passMu.
func (c *Collector) collect(ctx context.Context, need int64, began time.Time) (Report, error) {
	start := time.Now()
	p := c.policy.Load()
	rep := Report{Quota: p.MaxBytes}
	if err := c.tracker.Flush(ctx, c.index); err != nil {
		c.log.Warn("flush access times", zap.Error(err))
	}
	keepRead := c.keepReadSince(began)
	var w walked
	var err error
	if c.cl == nil {
		if w, err = c.walk(ctx); err == nil {
			rep.Before = w.total
			err = c.index.Exclusive(ctx, func(ctx context.Context) error { return c.apply(ctx, p, need, w, keepRead, &rep) })
		}
	} else {
		// Another replica's collection may have run while this one waited
		// for the section: walk within it, while links still go on if the
		// index lets (prepared), else inside it.
		walk := func(ctx context.Context) error {
			var err error
			if w, err = c.walk(ctx); err == nil {
				rep.Before = w.total
			}
			return err
		}
		decide := func(ctx context.Context) error { return c.apply(ctx, p, need, w, keepRead, &rep) }
		if px, ok := c.index.(preparer); ok {
			err = px.ExclusivePrepared(ctx, walk, decide)
		} else {
			err = c.index.Exclusive(ctx, func(ctx context.Context) error {
				if err := walk(ctx); err != nil {
					return err
				}
				return decide(ctx)
			})
		}
	}
	c.walked.Add(-rep.DeletedBytes)
	rep.After = rep.Before - rep.DeletedBytes
	rep.Took = time.Since(start)
	c.m.runs.Inc()
	c.m.duration.Observe(rep.Took.Seconds())
	c.m.evictedImages.Add(float64(rep.EvictedImages))
	c.m.evictedBytes.Add(float64(rep.EvictedBytes))
	c.m.deleted.Add(float64(rep.DeletedBlobs))
	if err != nil {
		return rep, fmt.Errorf("evict: %w", err)
	}
	c.m.pinned.Set(float64(rep.PinnedBytes))
	c.m.pushed.Set(float64(rep.PushedBytes))
	level, msg := zap.InfoLevel, "garbage collection"
	c.stuck.Store(p.MaxBytes > 0 && rep.After > p.high())
	if c.stuck.Load() {
		level, msg = zap.WarnLevel, "garbage collection: still over the high watermark; the rest is pinned, pushed or in use"
	}
	c.log.Log(level, msg,
		zap.Int64("bytes_before", rep.Before), zap.Int64("bytes_after", rep.After), zap.Int64("quota", rep.Quota),
		zap.Int("evicted_images", rep.EvictedImages), zap.Int64("evicted_bytes", rep.EvictedBytes),
		zap.Int("deleted_blobs", rep.DeletedBlobs), zap.Int64("deleted_bytes", rep.DeletedBytes),
		zap.Int64("pinned_bytes", rep.PinnedBytes), zap.Int64("pushed_bytes", rep.PushedBytes),
		zap.Duration("took", rep.Took))
	return rep, nil
}

// apply decides what to evict and removes it, links first, then the
// bytes; it runs inside the index's Exclusive section.
func (c *Collector) apply(ctx context.Context, p *policy, need int64, w walked, keepRead time.Time, rep *Report) error {
	m, pl, err := c.plan(ctx, p, w.total, need, w.sizes, keepRead)
	if err != nil {
		return err
	}
	rep.EvictedImages, rep.EvictedBytes = pl.images, pl.bytes
	rep.PinnedBytes = m.heldBy(func(n *node) bool { return n.pinned }, w.sizes)
	rep.PushedBytes = m.heldBy(func(n *node) bool { return n.rec.Origin == meta.OriginPush }, w.sizes)
	// Links first: a crash from here on leaves only unreferenced files.
	// Repositories, then blobs, a few at a time: links wait meanwhile.
	var mu sync.Mutex
	var forget []accessKey
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sectionConcurrency)
	for _, r := range m.repos {
		rm := r.removal
		if len(rm.Tags)+len(rm.Manifests)+len(rm.Blobs) == 0 {
			continue
		}
		g.Go(func() error {
			if err := c.index.Remove(gctx, rm); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range append(append([]digest.Digest(nil), rm.Manifests...), rm.Blobs...) {
				forget = append(forget, accessKey{r.name, d})
			}
			return nil
		})
	}
	err = g.Wait()
	c.tracker.forget(forget) // what was removed before an error too
	if err != nil {
		return err
	}
	if len(m.stale) > 0 {
		if err := c.index.DeleteAccess(ctx, m.stale); err != nil {
			c.log.Warn("drop stale access times", zap.Error(err))
		}
	}
	// Then the bytes.
	now := c.now()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(sectionConcurrency)
	for d, info := range w.files {
		if m.holders[d] > 0 || c.busy(d) {
			continue
		}
		if !pl.freed[d] && now.Sub(info.ModTime) < c.grace {
			continue // maybe a fill or push about to link it
		}
		g.Go(func() error {
			if c.filling(gctx, d) {
				return nil // another replica is filling it: it links it next
			}
			if cur, err := c.store.Stat(gctx, d); err != nil || !cur.ModTime.Equal(info.ModTime) {
				return nil // gone, or written again since the walk: someone is committing it
			}
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := c.store.Delete(gctx, d); err != nil {
				if errors.Is(err, content.ErrNotFound) {
					return nil
				}
				return err
			}
			mu.Lock()
			rep.DeletedBlobs++
			rep.DeletedBytes += info.Size
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// sectionConcurrency bounds the removals and deletions a collection sends
// at once while links wait for it.
const sectionConcurrency = 8
