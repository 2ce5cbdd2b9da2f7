package evict

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// Several replicas on one shared content store and index (Azure Blob
// Storage) each run a collector. WithCluster makes them act as one:
//
//   - One at a time. Each collection decides and deletes inside the
//     index's Exclusive section, which a shared index holds cluster-wide
//     (azmeta: a lease on meta/exclusive); a second replica's collector
//     waits for it. The store is walked within the section, so a
//     collector that waited sees what the other one deleted: in its first
//     part, where links still go on (azmeta's announcement, while the
//     settle time passes), when the index has one. Links wait only while
//     the collector reads the index, decides and deletes; every wait
//     (the replicas' reads settling into the shared log, the settle time)
//     comes before.
//   - Pins and pushed content are in the shared index: every collector
//     honours them.
//   - Never a blob being filled: before deleting a blob the collector
//     asks Fills whether any replica holds a live fill record for it.
//     Blobs being pushed are not in the store until their upload commits
//     (session bytes live elsewhere); a commit finding the blob there
//     already touches it, and a blob younger than the grace period
//     (WithGrace) is never deleted unreferenced.
//   - Never a blob read within ReadGrace. Replicas record reads in the
//     shared access log once per flush interval (WithFlushInterval, 1 min),
//     so a collection that no write waits for first flushes its own reads
//     and then waits one flush interval and a quarter (the flush's own
//     writes take time): every replica's reads from before the collection
//     began are then in the log. Eviction then skips every
//     image and blob link read within ReadGrace (default two flush
//     intervals) before the collection began. A collection a write waits
//     for (to make room within the quota) does not wait: it sees the reads
//     flushed so far, which leaves out at most the last flush interval of
//     other replicas' reads.
//   - The quota is the container's: the walk lists the shared store, so
//     usage is cluster-wide. It is walked again every Refresh (default one
//     flush interval) between collections, so the other replicas' writes
//     count within that time; reservations of writes in progress are per
//     replica, so replicas filling at once may together pass the quota by
//     what they reserved since the last walk.

// preparer is an index whose Exclusive section begins with a part that
// excludes other sections but not links (azmeta: the section announced,
// settling): the collector walks the store there, so that links wait only
// while it reads the index, decides and deletes.
type preparer interface {
	ExclusivePrepared(ctx context.Context, prepare, fn func(ctx context.Context) error) error
}

// FillChecker tells whether any replica is filling a blob
// (cluster.FillRecords is one).
type FillChecker interface {
	// Filling reports whether d is being filled; an error means unknown
	// (the blob is kept).
	Filling(ctx context.Context, d digest.Digest) (bool, error)
}

// Cluster is what a collector sharing its store and index needs.
type Cluster struct {
	// Fills tells whether any replica is filling a blob; nil: only
	// WithBusy's answer (this replica's fills) counts.
	Fills FillChecker
	// ReadGrace is how long after its last read an image or blob link is
	// never evicted; default two flush intervals.
	ReadGrace time.Duration
	// Refresh is how often the store's size is walked between
	// collections; default one flush interval.
	Refresh time.Duration
}

// WithCluster makes the collector one of several on a shared store and
// index (see Cluster).
func WithCluster(cl Cluster) Option { return func(c *Collector) { c.cl = &cl } }

// resolveCluster fills in the defaults, which depend on the flush
// interval.
func (c *Collector) resolveCluster() {
	if c.cl == nil {
		return
	}
	if c.cl.ReadGrace <= 0 {
		c.cl.ReadGrace = 2 * c.flushEvery
	}
	if c.cl.Refresh <= 0 {
		c.cl.Refresh = c.flushEvery
	}
}

// settleReads makes every replica's reads from before now visible in the
// shared access log: it flushes this replica's and waits one flush
// interval and a quarter for the others'. It returns when the collection began (what
// ReadGrace counts from), or the zero time when no read grace applies.
func (c *Collector) settleReads(ctx context.Context) (time.Time, error) {
	if c.cl == nil {
		return time.Time{}, nil
	}
	began := c.now()
	if err := c.tracker.Flush(ctx, c.index); err != nil {
		c.log.Warn("flush access times", zap.Error(err))
	}
	t := time.NewTimer(c.flushEvery + c.flushEvery/4) // a quarter for the flush's own writes
	defer t.Stop()
	select {
	case <-t.C:
		return began, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// keepReadSince is the earliest read that keeps an image from eviction
// in a collection that began at began (zero: none).
func (c *Collector) keepReadSince(began time.Time) time.Time {
	if c.cl == nil {
		return time.Time{}
	}
	if began.IsZero() {
		began = c.now()
	}
	return began.Add(-c.cl.ReadGrace)
}

// filling reports whether another replica may be filling d (an error
// counts as yes).
func (c *Collector) filling(ctx context.Context, d digest.Digest) bool {
	if c.cl == nil || c.cl.Fills == nil {
		return false
	}
	f, err := c.cl.Fills.Filling(ctx, d)
	if err != nil {
		c.log.Warn("ask whether a blob is being filled; keeping it", zap.String("digest", d.String()), zap.Error(err))
		return true
	}
	return f
}

// refresh walks the store for its size, between collections; it skips
// while a collection runs.
func (c *Collector) refresh(ctx context.Context) {
	if !c.passMu.TryLock() {
		return
	}
	defer c.passMu.Unlock()
	if _, err := c.walk(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("walk the store for its size", zap.Error(err))
	}
	c.maybeKick()
}
