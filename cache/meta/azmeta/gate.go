package azmeta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// ErrLinkRaced means a linking write took longer than the settle time to
// commit while an Exclusive section began on another replica: the write
// may have landed after that section's walks, so a collector may have
// deleted what it links. The caller must treat the write as failed (a
// client retries the pull or push; the retry links again).
var ErrLinkRaced = fmt.Errorf("azmeta: the link may have missed another replica's exclusive section; retry: %w", meta.ErrRaced)

// gate is this replica's side of the Exclusive section.
type gate struct {
	// local is held shared by linking writes and exclusively by Exclusive,
	// as badgermeta's gate.
	local sync.RWMutex

	mu   sync.Mutex
	seen *gateReading // the last reading that found the gate free
}

// gateReading is what a read of the gate record found.
type gateReading struct {
	etag azcore.ETag // "" when the record does not exist
	held bool        // another replica holds the lease
	sent time.Time   // when the read was sent
}

// gateRecord is the body of meta/exclusive: who holds the section, for
// operators. Writing it is what changes the record's ETag.
type gateRecord struct {
	Holder string    `json:"holder,omitempty"`
	Since  time.Time `json:"since"`
}

func (g *gate) forget() {
	g.mu.Lock()
	g.seen = nil
	g.mu.Unlock()
}

// readGate reads the gate record's ETag and lease.
func (x *Index) readGate(ctx context.Context) (gateReading, error) {
	r := gateReading{sent: x.now()}
	p, err := x.ctr.Client().NewBlobClient(gateName).GetProperties(ctx, nil)
	err = azure.Classify("stat", gateName, err)
	x.m.request("stat", err)
	if errors.Is(err, azure.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if p.ETag != nil {
		r.etag = *p.ETag
	}
	if p.LeaseState != nil {
		s := *p.LeaseState
		r.held = s == lease.StateTypeLeased || s == lease.StateTypeBreaking
	}
	return r, nil
}

// waitGate returns a reading of the gate that found it free, waiting while
// another replica holds it. A reading sent less than a quarter of the
// settle time ago is reused.
func (x *Index) waitGate(ctx context.Context) (gateReading, error) {
	x.gate.mu.Lock()
	if s := x.gate.seen; s != nil && x.now().Sub(s.sent) < x.settle/4 {
		r := *s
		x.gate.mu.Unlock()
		return r, nil
	}
	x.gate.mu.Unlock()
	delay, waited := 50*time.Millisecond, false
	for {
		r, err := x.readGate(ctx)
		if err != nil {
			return r, err
		}
		if !r.held {
			x.gate.mu.Lock()
			if x.gate.seen == nil || x.gate.seen.sent.Before(r.sent) {
				x.gate.seen = &r
			}
			x.gate.mu.Unlock()
			return r, nil
		}
		if !waited {
			x.m.gateWaits.Inc()
			waited = true
		}
		if err := sleep(ctx, delay); err != nil {
			return r, err
		}
		delay = min(2*delay, time.Second)
	}
}

// link runs a write that adds links to repo while no Exclusive section
// runs, here or on another replica, and makes sure a section that began
// meanwhile sees it (see the package documentation). It records repo (as
// origin o, created at now) before fn writes.
func (x *Index) link(ctx context.Context, repo string, o meta.Origin, now time.Time, fn func(ctx context.Context) error) error {
	x.gate.local.RLock()
	defer x.gate.local.RUnlock()
	r, err := x.waitGate(ctx)
	if err != nil {
		return fmt.Errorf("read the exclusive gate: %w", err)
	}
	if err := x.ensureRepo(ctx, repo, o, now, r.etag); err != nil {
		return err
	}
	if err := fn(ctx); err != nil {
		return err
	}
	if x.now().Sub(r.sent) < x.settle*3/4 {
		return nil
	}
	cur, err := x.readGate(ctx)
	if err != nil {
		return fmt.Errorf("confirm the link against the exclusive gate: %w", err)
	}
	if cur.etag == r.etag {
		return nil
	}
	x.m.races.Inc()
	return ErrLinkRaced
}

// Exclusive implements meta.Remover. On this replica linking writes wait
// on the local gate; on the others they wait while this replica holds the
// lease of meta/exclusive. fn runs settle after the lease was taken and
// announced, with a context whose reads skip the read cache and which is
// cancelled if the lease is lost (the section then returns an error
// wrapping azure.ErrLeaseLost).
func (x *Index) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	x.gate.local.Lock()
	defer x.gate.local.Unlock()
	defer x.gate.forget() // this replica's own announcement changed the ETag
	l, err := x.takeGate(ctx)
	if err != nil {
		return wrap("exclusive", err)
	}
	fctx, cancel := context.WithCancelCause(WithoutCache(ctx))
	keepCtx, stopKeep := context.WithCancel(ctx)
	kept := make(chan error, 1)
	go func() {
		err := l.Keep(keepCtx, gateKeep)
		if errors.Is(err, azure.ErrLeaseLost) {
			cancel(err)
		}
		kept <- err
	}()
	_, err = x.put(fctx, gateName, gateRecord{Holder: x.holder, Since: x.now().UTC()}, l.Cond())
	if err == nil {
		err = sleep(fctx, x.settle)
	}
	if err == nil {
		err = fn(fctx)
	}
	stopKeep()
	keepErr := <-kept
	cancel(nil)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	rerr := l.Release(rctx)
	x.m.request("lease", rerr)
	if rerr != nil {
		x.log.Warn("release the exclusive gate; it expires by itself", zap.Error(rerr))
	}
	if errors.Is(keepErr, azure.ErrLeaseLost) {
		return errors.Join(err, wrap("exclusive", keepErr))
	}
	return err
}

// takeGate acquires the lease of the gate record, creating the record if
// needed and waiting while another replica holds it.
func (x *Index) takeGate(ctx context.Context) (*azure.Lease, error) {
	delay := 50 * time.Millisecond
	for {
		l, err := x.ctr.AcquireLease(ctx, gateName, gateLease)
		x.m.request("lease", err)
		switch {
		case err == nil:
			return l, nil
		case errors.Is(err, azure.ErrNotFound):
			_, err := x.put(ctx, gateName, gateRecord{}, azure.Cond{IfNoneMatch: azcore.ETagAny})
			if err != nil && !errors.Is(err, azure.ErrExists) && !errors.Is(err, azure.ErrLeaseConflict) && !errors.Is(err, azure.ErrConditionNotMet) {
				return nil, err
			}
			continue
		case errors.Is(err, azure.ErrLeaseConflict):
			if err := sleep(ctx, delay); err != nil {
				return nil, err
			}
			delay = min(2*delay, time.Second)
		default:
			return nil, err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
