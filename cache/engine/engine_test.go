package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

func TestFlightGroup(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var g flightGroup
		var calls atomic.Int32
		release := make(chan struct{})
		var wg sync.WaitGroup
		shared := atomic.Int32{}
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, s, err := g.do(context.Background(), "k", func() (any, error) {
					calls.Add(1)
					<-release
					return 42, nil
				})
				if err != nil || v.(int) != 42 {
					t.Errorf("got %v %v", v, err)
				}
				if s {
					shared.Add(1)
				}
			}()
		}
		synctest.Wait() // one caller runs the call, nine wait for it
		// A caller that gives up gets its context's error; the call goes on.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := g.do(ctx, "k", func() (any, error) { return nil, nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		close(release)
		wg.Wait()
		if calls.Load() != 1 || shared.Load() != 9 {
			t.Fatalf("calls %d shared %d, want 1 and 9", calls.Load(), shared.Load())
		}
	})
}
