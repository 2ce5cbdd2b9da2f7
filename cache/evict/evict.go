// Package evict keeps the content store within its quota while airlock
// serves: it tracks when each image was last pulled (in memory, flushed in
// batches), evicts the least recently used cached images past a high
// watermark down to a low one, never evicting pinned or pushed content, and
// collects blobs nothing references, online.
//
// Eviction understands references: an image is a root manifest with every
// child manifest and blob it needs in its repository; an index never
// outlives its children, and a blob shared by several images is freed only
// when none needs it. Metadata links go first, then the bytes.
package evict

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/reference"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Policy is the quota and the pins from the configuration; it can be
// replaced while running (SetPolicy).
type Policy struct {
	// MaxBytes is the content store's quota; 0 means unbounded (garbage
	// is still collected).
	MaxBytes int64
	// HighWatermark and LowWatermark are fractions of MaxBytes: past the
	// high one, images are evicted until the store is under the low one.
	HighWatermark, LowWatermark float64
	// Pins are references ("repo:tag", "repo@digest") never evicted.
	Pins []string
}

// Default watermarks.
const (
	DefaultHighWatermark = 0.9
	DefaultLowWatermark  = 0.8
)

type policy struct {
	Policy
	pins []reference.Ref
}

func (p *policy) high() int64 { return int64(float64(p.MaxBytes) * p.HighWatermark) }
func (p *policy) low() int64  { return int64(float64(p.MaxBytes) * p.LowWatermark) }

// Collector evicts and collects garbage. Create it with New, wrap the
// engine's content store with Store, feed Tracker to the engine, then Run.
type Collector struct {
	store   Store
	index   Index
	log     *zap.Logger
	m       *metrics
	tracker *Tracker

	busy       func(digest.Digest) bool
	cl         *Cluster // shared store and index (cluster.go); nil: alone
	now        func() time.Time
	grace      time.Duration
	interval   time.Duration
	flushEvery time.Duration
	kickGap    time.Duration

	policy     atomic.Pointer[policy]
	walked     atomic.Int64 // store size at the last walk, minus what was deleted
	pending    atomic.Int64 // bytes committed since that walk began
	walkedOnce atomic.Bool  // a collection has walked the store
	resMu      sync.Mutex   // reserved, and pending moving from it (quota.go)
	reserved   int64        // bytes reserved by writes in progress
	noRoomAt   atomic.Int64 // unix nanoseconds of the last collection that could not make room
	kick       chan struct{}
	passMu     sync.Mutex
	stuck      atomic.Bool // the last collection could not get under the high watermark
}

// Option configures a Collector.
type Option func(*Collector)

// WithBusy sets how to tell a blob that is being filled (never collected).
func WithBusy(f func(digest.Digest) bool) Option { return func(c *Collector) { c.busy = f } }

// WithClock sets the time source.
func WithClock(now func() time.Time) Option { return func(c *Collector) { c.now = now } }

// WithGrace sets how old an unreferenced blob must be before it is
// collected (a fill or push links its blobs just after writing them).
func WithGrace(d time.Duration) Option { return func(c *Collector) { c.grace = d } }

// WithInterval sets how often a collection runs without being asked.
func WithInterval(d time.Duration) Option { return func(c *Collector) { c.interval = d } }

// WithFlushInterval sets how often access times are written to the index.
func WithFlushInterval(d time.Duration) Option { return func(c *Collector) { c.flushEvery = d } }

// WithKickGap sets the least time between collections started because the
// store passed its high watermark, while the last one could not get under
// it (everything left is pinned, pushed or in use).
func WithKickGap(d time.Duration) Option { return func(c *Collector) { c.kickGap = d } }

// New returns a collector over store and index.
func New(store Store, index Index, log *zap.Logger, reg prometheus.Registerer, p Policy, opts ...Option) (*Collector, error) {
	c := &Collector{
		store: store, index: index, log: log,
		busy:       func(digest.Digest) bool { return false },
		now:        time.Now,
		grace:      time.Hour,
		interval:   time.Hour,
		flushEvery: time.Minute,
		kickGap:    5 * time.Second,
		kick:       make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	c.resolveCluster()
	c.tracker = NewTracker(c.now)
	if err := c.SetPolicy(p); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg, c)
	if err != nil {
		return nil, fmt.Errorf("evict: metrics: %w", err)
	}
	c.m = m
	return c, nil
}

// CheckPolicy validates a policy.
func CheckPolicy(p Policy) error {
	_, err := compile(p)
	return err
}

func compile(p Policy) (*policy, error) {
	if p.MaxBytes < 0 {
		return nil, errors.New("maxBytes must not be negative")
	}
	if p.HighWatermark == 0 {
		p.HighWatermark = DefaultHighWatermark
	}
	if p.LowWatermark == 0 {
		p.LowWatermark = DefaultLowWatermark
	}
	if !(0 < p.LowWatermark && p.LowWatermark < p.HighWatermark && p.HighWatermark <= 1) {
		return nil, fmt.Errorf("watermarks must satisfy 0 < low (%v) < high (%v) <= 1", p.LowWatermark, p.HighWatermark)
	}
	cp := &policy{Policy: p}
	for _, s := range p.Pins {
		r, err := reference.ParseLocal(s)
		if err != nil {
			return nil, fmt.Errorf("pin: %w", err)
		}
		cp.pins = append(cp.pins, r)
	}
	return cp, nil
}

// SetPolicy replaces the quota, watermarks and configured pins.
func (c *Collector) SetPolicy(p Policy) error {
	cp, err := compile(p)
	if err != nil {
		return fmt.Errorf("evict: %w", err)
	}
	c.policy.Store(cp)
	c.maybeKick()
	return nil
}

// Tracker is the access tracker to give the engine.
func (c *Collector) Tracker() *Tracker { return c.tracker }

// Store wraps the content store the engine writes through so that the
// collector hears of new bytes and of a full disk. The optional abilities
// to take writes of unknown digest (content.PendingIngester) and to copy
// inside the backend (content.Copier) are kept.
func (c *Collector) Store() Store {
	a := &accounted{Store: c.store, c: c}
	pi, pending := c.store.(content.PendingIngester)
	cp, copier := c.store.(content.Copier)
	switch {
	case pending && copier:
		return &accountedPendingCopier{accountedPending: &accountedPending{accounted: a, pi: pi}, cp: cp}
	case pending:
		return &accountedPending{accounted: a, pi: pi}
	case copier:
		return &accountedCopier{accounted: a, cp: cp}
	}
	return a
}

// Used is the estimated size of the content store in bytes.
func (c *Collector) Used() int64 { return c.walked.Load() + c.pending.Load() }

func (c *Collector) maybeKick() {
	if p := c.policy.Load(); p.MaxBytes > 0 && c.Used() > p.high() {
		c.Kick()
	}
}

func (c *Collector) noteErr(err error) {
	if diskFull(err) {
		c.log.Warn("content store is full: collecting now", zap.Error(err))
		c.Kick()
	}
}

// Kick asks for a collection soon.
func (c *Collector) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run collects once at once, then whenever kicked (at most once per kick
// gap) and every interval, and flushes access times, until ctx ends; it
// then flushes access times a last time. With WithCluster it also walks
// the store for its size every Refresh.
func (c *Collector) Run(ctx context.Context) {
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	flush := time.NewTicker(c.flushEvery)
	defer flush.Stop()
	var last time.Time
	collect := func() {
		last = time.Now()
		if _, err := c.Collect(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("garbage collection failed", zap.Error(err))
		}
	}
	var refresh <-chan time.Time
	if c.cl != nil {
		t := time.NewTicker(c.cl.Refresh)
		defer t.Stop()
		refresh = t.C
	}
	collect()
	for {
		select {
		case <-refresh:
			c.refresh(ctx)
		case <-ctx.Done():
			// ctx has ended: the last flush runs without its cancellation.
			if err := c.tracker.Flush(context.WithoutCancel(ctx), c.index); err != nil {
				c.log.Warn("flush access times", zap.Error(err))
			}
			return
		case <-c.kick:
			if wait := c.kickGap - time.Since(last); wait > 0 && c.stuck.Load() {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					continue
				}
			}
			collect()
		case <-tick.C:
			collect()
		case <-flush.C:
			if err := c.tracker.Flush(ctx, c.index); err != nil {
				c.log.Warn("flush access times", zap.Error(err))
			}
		}
	}
}
