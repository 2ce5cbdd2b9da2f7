package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// ErrReleased means a claim was used after Release.
var ErrReleased = errors.New("cluster: fill claim released")

// Claim is this replica's hold on a fill record: while it lasts, this
// replica alone fills the blob. Its lease is renewed in the background
// until Release or until it is lost.
type Claim struct {
	f     *Fills
	d     digest.Digest
	lease *azure.Lease
	prev  *FillRecord // the record taken over, nil for a new fill

	stop  context.CancelFunc
	named chan struct{} // closed when the record names this replica, or could not
	kept  chan struct{} // closed when the renewal ends

	mu       sync.Mutex
	rec      FillRecord
	lost     chan struct{}
	err      error // why the claim was lost
	released bool
}

// newClaim writes rec (naming this replica the holder) under l, and
// starts renewing l; both outlive ctx (the claimer's request) until
// Release.
func newClaim(ctx context.Context, f *Fills, d digest.Digest, l *azure.Lease, rec FillRecord) *Claim {
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c := &Claim{f: f, d: d, lease: l, rec: rec, stop: stop, named: make(chan struct{}), kept: make(chan struct{}), lost: make(chan struct{})}
	go c.name(ctx)
	go c.keep(ctx)
	return c
}

// name writes the record naming this replica under the lease, so that
// contenders relay from it; until it lands they see a leased record
// without a holder and wait a moment (ClaimFill). A write that fails
// loses the claim: nobody could tell who fills.
func (c *Claim) name(ctx context.Context) {
	defer close(c.named)
	if _, err := c.f.c.Put(ctx, FillName(c.d), mustJSON(c.rec), c.lease.Cond()); err != nil && ctx.Err() == nil {
		c.markLost(fmt.Errorf("name the holder: %w", err))
	}
}

// keep renews the lease until stopped or lost.
func (c *Claim) keep(ctx context.Context) {
	defer close(c.kept)
	if err := c.lease.Keep(ctx, c.lease.Duration()/3); errors.Is(err, azure.ErrLeaseLost) {
		c.markLost(err)
	}
}

// markLost records the first reason the claim was lost and closes Lost.
func (c *Claim) markLost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.released {
		return
	}
	c.err = fmt.Errorf("cluster: fill claim on %s lost: %w", c.d, err)
	close(c.lost)
	c.f.lost.Inc()
	c.f.log.Warn("fill claim lost", zap.String("digest", c.d.String()), zap.Error(err))
}

// Digest is the blob the claim is for.
func (c *Claim) Digest() digest.Digest { return c.d }

// Takeover returns the record this claim took over from a previous holder
// (its Verified says how far it got), and false for a new fill.
func (c *Claim) Takeover() (FillRecord, bool) {
	if c.prev == nil {
		return FillRecord{}, false
	}
	return *c.prev, true
}

// Lost is closed when the claim is lost: the lease could not be renewed
// or a fenced write was refused. The holder must then stop filling and
// fail its readers; another replica fills.
func (c *Claim) Lost() <-chan struct{} { return c.lost }

// Err says why the claim was lost, nil while it holds.
func (c *Claim) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Progress records that the first verified bytes are stored, under the
// lease: it is also the fence to pass right before publishing the blob.
// Errors wrap azure.ErrLeaseConflict (and the claim is lost) when another
// replica holds the record now, are the loss of a claim lost already (as
// Err), and wrap ErrReleased after Release.
func (c *Claim) Progress(ctx context.Context, verified int64) error {
	select { // the record names this replica before it says how far
	case <-c.named:
	case <-ctx.Done():
		return fmt.Errorf("cluster: fill progress of %s: %w", c.d, ctx.Err())
	}
	c.mu.Lock()
	switch lost := c.err; {
	case c.released:
		c.mu.Unlock()
		return fmt.Errorf("cluster: fill progress of %s: %w", c.d, ErrReleased)
	case lost != nil:
		c.mu.Unlock()
		return lost
	}
	rec := c.rec
	rec.Verified = verified
	c.mu.Unlock()
	if _, err := c.f.c.Put(ctx, FillName(c.d), mustJSON(rec), c.lease.Cond()); err != nil {
		if errors.Is(err, azure.ErrLeaseConflict) {
			c.markLost(err)
		}
		return fmt.Errorf("cluster: fill progress of %s: %w", c.d, err)
	}
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
	return nil
}

// Release ends the claim, done or abandoned: it stops renewing and
// deletes the record under the lease, so the next miss claims afresh.
// It returns the loss if the claim was lost (errors wrap
// azure.ErrLeaseLost, or azure.ErrLeaseConflict or azure.ErrNotFound when
// Release found out); later calls return nil.
func (c *Claim) Release(ctx context.Context) error {
	<-c.named // its write may not follow the deletion
	c.stop()
	<-c.kept
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return nil
	}
	c.released = true
	lostErr := c.err
	c.mu.Unlock()
	if lostErr != nil {
		// A lease still held (the record could not be named) goes at
		// once rather than make others wait it out; a lost one refuses.
		_ = c.lease.Release(ctx)
		return lostErr
	}
	if err := c.f.c.Delete(ctx, FillName(c.d), c.lease.Cond()); err != nil {
		if errors.Is(err, azure.ErrLeaseConflict) || errors.Is(err, azure.ErrNotFound) {
			// Taken over, and maybe released by the next holder already.
			c.f.lost.Inc()
			return fmt.Errorf("cluster: fill claim on %s lost: %w", c.d, err)
		}
		return fmt.Errorf("cluster: release fill %s: %w", c.d, err)
	}
	return nil
}
