package azure

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// leased creates the blob name in a fresh container: leases need a blob.
func leased(t *testing.T, e *env, name string) *Container {
	t.Helper()
	c := e.open(t)
	if _, err := c.Put(context.Background(), name, []byte("record"), Cond{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// held is the blob "fill" of a fresh container and a lease of d on it.
func held(t *testing.T, e *env, d time.Duration) (*Container, *Lease) {
	t.Helper()
	c := leased(t, e, "fill")
	l, err := c.AcquireLease(context.Background(), "fill", d)
	if err != nil {
		t.Fatal(err)
	}
	return c, l
}

func TestLeaseDurationChecked(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, 14 * time.Second, 61 * time.Second, 15500 * time.Millisecond} {
		if _, err := checkDuration(d); err == nil {
			t.Errorf("duration %s accepted", d)
		}
	}
	for _, d := range []time.Duration{MinLease, MaxLease, Infinite} {
		if _, err := checkDuration(d); err != nil {
			t.Errorf("duration %s: %v", d, err)
		}
	}
}

func testLeaseOneWinner(t *testing.T, e *env) {
	ctx := context.Background()
	c := leased(t, e, "fill")
	if _, err := c.AcquireLease(ctx, "absent", MinLease); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lease of a missing blob: %v", err)
	}
	const n = 8
	var wg sync.WaitGroup
	won := make(chan *Lease, n)
	lost := make(chan error, n)
	for range n {
		wg.Go(func() {
			l, err := c.AcquireLease(ctx, "fill", MinLease)
			if err != nil {
				lost <- err
				return
			}
			won <- l
		})
	}
	wg.Wait()
	close(won)
	close(lost)
	if len(won) != 1 {
		t.Fatalf("%d acquirers won, want exactly 1", len(won))
	}
	for err := range lost {
		if !errors.Is(err, ErrLeaseConflict) {
			t.Fatalf("a losing acquirer got %v, want ErrLeaseConflict", err)
		}
	}
	l := <-won
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Released: the next acquirer gets it at once.
	if _, err := c.AcquireLease(ctx, "fill", MinLease); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

func testLeaseFences(t *testing.T, e *env) {
	ctx := context.Background()
	c, l := held(t, e, MaxLease)
	if _, err := c.Put(ctx, "fill", []byte("no lease"), Cond{}); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("write without the lease: %v, want ErrLeaseConflict", err)
	}
	if _, err := c.Put(ctx, "fill", []byte("wrong"), Cond{LeaseID: "00000000-0000-0000-0000-000000000001"}); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("write with another lease ID: %v, want ErrLeaseConflict", err)
	}
	if err := c.Delete(ctx, "fill", Cond{}); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("delete without the lease: %v, want ErrLeaseConflict", err)
	}
	if _, err := c.Put(ctx, "fill", []byte("holder"), l.Cond()); err != nil {
		t.Fatalf("holder's write: %v", err)
	}
	// The write kept the lease: a competitor still cannot take it.
	if _, err := c.AcquireLease(ctx, "fill", MinLease); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("acquire after the holder wrote: %v", err)
	}
	// A handle made from the ID alone (a restarted holder) can release it.
	h, err := c.Lease("fill", l.ID(), MaxLease)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _, err := c.Get(ctx, "fill"); err != nil || string(b) != "holder" {
		t.Fatalf("record: %q %v", b, err)
	}
}

func testLeaseBreak(t *testing.T, e *env) {
	ctx := context.Background()
	c, old := held(t, e, MaxLease)
	left, err := c.BreakLease(ctx, "fill", 0)
	if err != nil || left != 0 {
		t.Fatalf("break: %s %v", left, err)
	}
	takenOver(t, c, old, "a break")
}

// takenOver checks, once old's lease on "fill" has ended (after what), that
// another holder acquires it and that old is fenced off: its write and
// renewal fail with ErrLeaseConflict while the new holder's write goes in.
func takenOver(t *testing.T, c *Container, old *Lease, what string) {
	t.Helper()
	ctx := context.Background()
	l, err := c.AcquireLease(ctx, "fill", MinLease)
	if err != nil {
		t.Fatalf("acquire after %s: %v", what, err)
	}
	if _, err := c.Put(ctx, "fill", []byte("stale"), old.Cond()); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("the ex-holder's write after %s: %v, want ErrLeaseConflict", what, err)
	}
	if err := old.Renew(ctx); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("the ex-holder's renew after %s: %v, want ErrLeaseConflict", what, err)
	}
	if _, err := c.Put(ctx, "fill", []byte("new holder"), l.Cond()); err != nil {
		t.Fatal(err)
	}
}

// testLeaseExpiry waits out the shortest lease the service grants (15 s);
// it runs in parallel with testLeaseKeep.
func testLeaseExpiry(t *testing.T, e *env) {
	ctx := context.Background()
	c, old := held(t, e, MinLease)
	if _, err := c.AcquireLease(ctx, "fill", MinLease); !errors.Is(err, ErrLeaseConflict) {
		t.Fatalf("acquire while held: %v", err)
	}
	time.Sleep(MinLease + 500*time.Millisecond)
	takenOver(t, c, old, "expiry") // the stalled ex-holder is fenced off
}

// testLeaseKeep: a holder that renews keeps the lease past its first
// expiry, and Keep reports the loss once someone breaks it.
func testLeaseKeep(t *testing.T, e *env) {
	ctx := context.Background()
	c, l := held(t, e, MinLease)
	kctx, cancel := context.WithCancel(ctx)
	kept := make(chan error, 1)
	go func() { kept <- l.Keep(kctx, 2*time.Second) }()
	time.Sleep(MinLease + time.Second)
	if _, err := c.AcquireLease(ctx, "fill", MinLease); !errors.Is(err, ErrLeaseConflict) {
		cancel()
		t.Fatalf("acquire while the holder renews: %v, want ErrLeaseConflict", err)
	}
	if _, err := c.Put(ctx, "fill", []byte("still mine"), l.Cond()); err != nil {
		cancel()
		t.Fatalf("the renewing holder's write: %v", err)
	}
	if _, err := c.BreakLease(ctx, "fill", 0); err != nil {
		cancel()
		t.Fatal(err)
	}
	select {
	case err := <-kept:
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Keep after a break: %v, want ErrLeaseLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Keep did not notice the broken lease")
	}
	cancel()
}

// testLeaseHold: fn runs under the renewed lease; once someone breaks it,
// fn's context ends with the loss as its cause and Hold reports the loss.
// A hold whose fn returns while the lease is fine reports fn's error only.
func testLeaseHold(t *testing.T, e *env) {
	ctx := context.Background()
	c, l := held(t, e, MinLease)
	errFn := errors.New("fn's own error")
	if err, lost := l.Hold(ctx, 2*time.Second, func(context.Context) error { return errFn }); !errors.Is(err, errFn) || lost != nil {
		t.Fatalf("Hold of a returning fn: %v, lost %v", err, lost)
	}
	inFn := make(chan struct{})
	type result struct{ err, lost error }
	done := make(chan result, 1)
	go func() {
		err, lost := l.Hold(ctx, 2*time.Second, func(ctx context.Context) error {
			close(inFn)
			<-ctx.Done()
			return context.Cause(ctx)
		})
		done <- result{err, lost}
	}()
	<-inFn
	if _, err := c.BreakLease(ctx, "fill", 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !errors.Is(r.err, ErrLeaseLost) || !errors.Is(r.lost, ErrLeaseLost) {
			t.Fatalf("Hold after a break: fn's cause %v, lost %v; want both ErrLeaseLost", r.err, r.lost)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Hold did not end fn after the lease was broken")
	}
}
