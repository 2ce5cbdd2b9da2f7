package azmeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/internal/sleep"
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
	// held: another replica holds the lease in the section proper, where
	// links wait; announced: it holds it announcing its section (links go
	// on, and confirm afterwards that the section did not begin).
	held, announced bool
	gen             uint64    // the sections announced so far
	sent            time.Time // when the read was sent
}

// Phases of a section in the gate record.
const (
	phaseAnnounce = "announce" // the lease is taken: links go on
	phaseHeld     = "held"     // links wait
)

// gateRecord is the body of meta/exclusive (and its metadata copy, which
// a read of the gate's properties returns): who holds the section, for
// operators, its phase and the count of sections announced. Writing it is
// what changes the record's ETag.
type gateRecord struct {
	Holder string    `json:"holder,omitempty"`
	Since  time.Time `json:"since"`
	Phase  string    `json:"phase,omitempty"` // "": held (a record of an older replica)
	Gen    uint64    `json:"gen,omitempty"`
}

func (g *gate) forget() {
	g.mu.Lock()
	g.seen = nil
	g.mu.Unlock()
}

// readGate reads the gate record's ETag, lease and phase.
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
	var rec gateRecord
	if b := metaRecord(p.Metadata); b != nil {
		_ = json.Unmarshal(b, &rec) // unreadable: a section in its proper phase, the safe side
	}
	r.gen = rec.Gen
	if p.LeaseState != nil {
		if s := *p.LeaseState; s == lease.StateTypeLeased || s == lease.StateTypeBreaking {
			r.announced = rec.Phase == phaseAnnounce
			r.held = !r.announced
		}
	}
	return r, nil
}

// waitGate returns a reading of the gate that found no section in its
// proper phase, waiting while another replica's is. A reading that found
// the gate free, sent less than a quarter of the settle time ago, is
// reused; one that found a section announced is not (the link confirms
// it afterwards, and a fresh reading makes that likelier to pass).
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
			if !r.announced {
				x.gate.mu.Lock()
				if x.gate.seen == nil || x.gate.seen.sent.Before(r.sent) {
					x.gate.seen = &r
				}
				x.gate.mu.Unlock()
			}
			return r, nil
		}
		if !waited {
			x.m.gateWaits.Inc()
			waited = true
		}
		if err := sleep.For(ctx, delay); err != nil {
			return r, err
		}
		delay = min(2*delay, time.Second)
	}
}

// link runs a write that adds links to repo while no Exclusive section
// runs in its proper phase, here or on another replica, and makes sure a
// section that began meanwhile sees it (see the package documentation).
// It records repo (as origin o, created at now) before fn writes.
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
	if !r.announced && x.now().Sub(r.sent) < x.settle*3/4 {
		return nil // a section announced after r reads the index after this
	}
	cur, err := x.readGate(ctx)
	if err != nil {
		return fmt.Errorf("confirm the link against the exclusive gate: %w", err)
	}
	if cur.etag == r.etag || (!r.announced && cur.announced && cur.gen == r.gen+1) {
		// No section reached its proper phase since r: the next one
		// reads the index after this.
		return nil
	}
	x.m.races.Inc()
	return ErrLinkRaced
}

// Exclusive implements meta.Remover: ExclusivePrepared without a
// preparation.
func (x *Index) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	return x.ExclusivePrepared(ctx, nil, fn)
}

// ExclusivePrepared runs prepare (if not nil) and then fn, each at most
// once, holding the lease of meta/exclusive: no other replica's section
// runs meanwhile. It first announces the section (a new generation in the
// gate record) and runs prepare while the settle time passes: links go on
// meanwhile, here and on every replica. Then linking writes wait (on this
// replica on its local gate, on the others while the record says the
// section is held) while fn runs, with a context whose reads skip the read
// cache. So fn is the only part links wait for: no wait of the settle time
// in it. If the lease is lost, the running function's context is cancelled
// and the section returns an error wrapping azure.ErrLeaseLost.
func (x *Index) ExclusivePrepared(ctx context.Context, prepare, fn func(ctx context.Context) error) error {
	l, err := x.takeGate(ctx)
	if err != nil {
		return wrap("exclusive", err)
	}
	err, lost := l.Hold(ctx, gateKeep, func(ctx context.Context) error {
		return x.section(ctx, l, prepare, fn)
	})
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	rerr := l.Release(rctx)
	x.m.request("lease", rerr)
	if rerr != nil {
		x.log.Warn("release the exclusive gate; it expires by itself", zap.Error(rerr))
	}
	if lost != nil {
		return errors.Join(err, wrap("exclusive", lost))
	}
	return err
}

// section is ExclusivePrepared's work under the lease l: announce, prepare
// while settling, then hold links back and run fn.
func (x *Index) section(ctx context.Context, l *azure.Lease, prepare, fn func(ctx context.Context) error) error {
	var prev gateRecord
	if _, err := x.getJSON(ctx, gateName, &prev); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return wrap("exclusive", err)
	}
	rec := gateRecord{Holder: x.holder, Since: x.now().UTC(), Phase: phaseAnnounce, Gen: prev.Gen + 1}
	if _, err := x.put(ctx, gateName, rec, l.Cond()); err != nil {
		return wrap("exclusive", err)
	}
	x.gate.forget() // the announcement changed the ETag
	// Links whose gate read came before the announcement land within the
	// settle time, or find the new generation when they confirm.
	settled := time.Now().Add(x.settle)
	if prepare != nil {
		if err := prepare(ctx); err != nil {
			return err
		}
	}
	if err := sleep.Until(ctx, settled); err != nil {
		return err
	}
	x.gate.local.Lock() // this replica's links in flight end first
	defer x.gate.local.Unlock()
	defer x.gate.forget() // before this replica's links go on: the ETag changed
	rec.Phase = phaseHeld
	if _, err := x.put(ctx, gateName, rec, l.Cond()); err != nil {
		return wrap("exclusive", err)
	}
	return fn(WithoutCache(ctx))
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
			if err := sleep.For(ctx, delay); err != nil {
				return nil, err
			}
			delay = min(2*delay, time.Second)
		default:
			return nil, err
		}
	}
}
