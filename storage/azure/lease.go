package azure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
)

// The service's limits on a lease's duration; Infinite is the other choice.
const (
	MinLease = 15 * time.Second
	MaxLease = 60 * time.Second
	// Infinite is a lease that lasts until released or broken.
	Infinite time.Duration = -1
)

// Lease is a handle on one blob's lease. Whoever holds the ID holds the
// lease: writes to the blob must carry it (Cond), so a holder that stalled
// past the lease's end and lost it to another cannot write any more.
type Lease struct {
	client *lease.BlobClient
	name   string
	id     string
	dur    time.Duration
}

func checkDuration(d time.Duration) (int32, error) {
	if d == Infinite {
		return -1, nil
	}
	if d < MinLease || d > MaxLease || d%time.Second != 0 {
		return 0, fmt.Errorf("azure: lease duration %s: want whole seconds from %s to %s, or infinite", d, MinLease, MaxLease)
	}
	return int32(d / time.Second), nil
}

// Lease returns a handle on the lease of blob name with the given ID (a
// lease acquired elsewhere, e.g. by this replica before a restart),
// without contacting the service. d is the duration Renew extends it by.
func (c *Container) Lease(name, id string, d time.Duration) (*Lease, error) {
	if _, err := checkDuration(d); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("azure: lease handle without an ID")
	}
	lc, err := lease.NewBlobClient(c.client.NewBlobClient(name), &lease.BlobClientOptions{LeaseID: &id})
	if err != nil {
		return nil, fmt.Errorf("azure: lease %s: %w", name, err)
	}
	return &Lease{client: lc, name: name, id: id, dur: d}, nil
}

// AcquireLease takes the lease of the existing blob name for d (15 s to
// 60 s, or Infinite) under a new random ID. Errors wrap ErrLeaseConflict
// if another client holds it, ErrNotFound if the blob does not exist.
func (c *Container) AcquireLease(ctx context.Context, name string, d time.Duration) (*Lease, error) {
	secs, err := checkDuration(d)
	if err != nil {
		return nil, err
	}
	lc, err := lease.NewBlobClient(c.client.NewBlobClient(name), nil)
	if err != nil {
		return nil, fmt.Errorf("azure: lease %s: %w", name, err)
	}
	if _, err := lc.AcquireLease(ctx, secs, nil); err != nil {
		return nil, Classify("acquire lease", name, err)
	}
	return &Lease{client: lc, name: name, id: *lc.LeaseID(), dur: d}, nil
}

// BreakLease ends the lease of blob name, whoever holds it, after at most
// period (0: at once) and returns the time left until it can be acquired
// again. Breaking is how a replica takes over from a holder that stopped
// renewing without waiting for the expiry. Errors wrap ErrLeaseConflict if
// there is no lease to break.
func (c *Container) BreakLease(ctx context.Context, name string, period time.Duration) (time.Duration, error) {
	lc, err := lease.NewBlobClient(c.client.NewBlobClient(name), nil)
	if err != nil {
		return 0, fmt.Errorf("azure: lease %s: %w", name, err)
	}
	p := int32(period / time.Second)
	r, err := lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: &p})
	if err != nil {
		return 0, Classify("break lease", name, err)
	}
	return time.Duration(Value(r.LeaseTime)) * time.Second, nil
}

// ID is the lease's ID.
func (l *Lease) ID() string { return l.id }

// Name is the leased blob's name.
func (l *Lease) Name() string { return l.name }

// Duration is how long the lease lasts after each acquisition or renewal.
func (l *Lease) Duration() time.Duration { return l.dur }

// Cond is the precondition that fences a write to the leased blob.
func (l *Lease) Cond() Cond { return Cond{LeaseID: l.id} }

// Renew extends the lease by its duration from now. It succeeds on a
// lease that expired if nobody took it since; errors wrap ErrLeaseConflict
// if another client holds it or it was broken.
func (l *Lease) Renew(ctx context.Context) error {
	_, err := l.client.RenewLease(ctx, nil)
	return Classify("renew lease", l.name, err)
}

// Release ends the lease now so another client can acquire it at once.
// Errors wrap ErrLeaseConflict if the lease is no longer this one.
func (l *Lease) Release(ctx context.Context) error {
	_, err := l.client.ReleaseLease(ctx, nil)
	return Classify("release lease", l.name, err)
}

// Keep renews the lease every interval until ctx is done (it then returns
// ctx's error) or the lease is lost: a renewal answered ErrLeaseConflict,
// or renewals kept failing for as long as the lease lasts, so it may have
// expired. Both return an error wrapping ErrLeaseLost; the holder must then
// stop acting as one. interval must be well under the lease's duration
// (a third is usual). Run it in its own goroutine.
func (l *Lease) Keep(ctx context.Context, interval time.Duration) error {
	if l.dur == Infinite {
		<-ctx.Done()
		return ctx.Err()
	}
	if interval <= 0 || interval >= l.dur {
		return fmt.Errorf("azure: keep lease %s: interval %s must be positive and under %s", l.name, interval, l.dur)
	}
	renewed := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		start := time.Now()
		err := l.Renew(ctx)
		switch {
		case err == nil:
			renewed = start
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrLeaseConflict), errors.Is(err, ErrNotFound):
			return fmt.Errorf("%w: %w", ErrLeaseLost, err)
		case time.Since(renewed)+interval >= l.dur:
			return fmt.Errorf("%w: not renewed since %s: %w", ErrLeaseLost, renewed.Format(time.RFC3339), err)
		}
	}
}

// Hold runs fn while Keep renews the lease every interval; fn's context is
// cancelled, with the loss as its cause, if the lease is lost. It returns
// fn's error and, if the lease was lost meanwhile, Keep's error wrapping
// ErrLeaseLost (else nil). The lease is not released.
func (l *Lease) Hold(ctx context.Context, interval time.Duration, fn func(ctx context.Context) error) (err, lost error) {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	kctx, stopKeep := context.WithCancel(ctx)
	kept := make(chan error, 1)
	go func() {
		err := l.Keep(kctx, interval)
		if errors.Is(err, ErrLeaseLost) {
			cancel(err)
		}
		kept <- err
	}()
	err = fn(fctx)
	stopKeep()
	if kerr := <-kept; errors.Is(kerr, ErrLeaseLost) {
		return err, kerr
	}
	return err, nil
}
