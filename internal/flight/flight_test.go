package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSharedRunsOncePerKey(t *testing.T) {
	t.Parallel()
	var s Shared[string, int]
	var calls, shared atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, sh, err := s.Do(context.Background(), "k", func() (int, error) {
				calls.Add(1)
				close(started)
				<-release
				return 42, nil
			})
			if err != nil || v != 42 {
				t.Errorf("caller %d: got %v %v", i, v, err)
			}
			if sh {
				shared.Add(1)
			}
		}()
		if i == 0 {
			<-started // the others arrive while the call runs
		}
	}
	// A caller that gives up gets its context's error; the call goes on.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, sh, err := s.Do(ctx, "k", func() (int, error) { return 0, nil }); !errors.Is(err, context.Canceled) || !sh {
		t.Fatalf("cancelled waiter: shared %v, %v", sh, err)
	}
	// Another key does not wait for this one.
	if v, sh, err := s.Do(context.Background(), "other", func() (int, error) { return 7, nil }); v != 7 || sh || err != nil {
		t.Fatalf("other key: %v %v %v", v, sh, err)
	}
	waitGroup(t, &wg, release)
	if calls.Load() != 1 {
		t.Fatalf("fn ran %d times, want 1", calls.Load())
	}
	if shared.Load() != 9 {
		t.Fatalf("%d callers joined the running call, want 9", shared.Load())
	}
	// Once ended, the key runs again, and errors are shared like values.
	boom := errors.New("boom")
	if _, sh, err := s.Do(context.Background(), "k", func() (int, error) { return 0, boom }); !errors.Is(err, boom) || sh {
		t.Fatalf("second run: %v %v", sh, err)
	}
}

// The leader's context ending does not stop the call: the function runs on
// its own goroutine and the others still get its result.
func TestSharedLeaderLeaves(t *testing.T) {
	t.Parallel()
	var s Shared[string, string]
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	if _, _, err := s.Do(ctx, "k", func() (string, error) {
		close(started)
		<-release
		return "done", nil
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	res := make(chan string, 1)
	go func() {
		v, _, _ := s.Do(context.Background(), "k", func() (string, error) { return "second run", nil })
		res <- v
	}()
	close(release)
	select {
	case v := <-res:
		if v != "done" {
			t.Fatalf("joiner got %q, want the first call's result", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("joiner never returned")
	}
}

func TestGroupBeginEnd(t *testing.T) {
	t.Parallel()
	var g Group[int, string]
	refused := errors.New("refused")
	if _, _, err := g.Begin(1, func() (string, error) { return "", refused }); !errors.Is(err, refused) || g.Len() != 0 {
		t.Fatalf("a refused start registered a call: %v, %d calls", err, g.Len())
	}
	c, leader, err := g.Begin(1, func() (string, error) { return "first", nil })
	if err != nil || !leader || c.Val != "first" {
		t.Fatalf("Begin: %v %v %v", c, leader, err)
	}
	j, leader, _ := g.Begin(1, func() (string, error) { t.Fatal("start ran for a running key"); return "", nil })
	if j != c || leader {
		t.Fatal("the second Begin did not join the running call")
	}
	if got, ok := g.Get(1); !ok || got != c || g.Len() != 1 {
		t.Fatal("Get does not see the running call")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a running call: %v", err)
	}
	boom := errors.New("boom")
	g.End(1, c, boom)
	if _, ok := g.Get(1); ok || g.Len() != 0 {
		t.Fatal("an ended call is still registered")
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed")
	}
	if err := c.Wait(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Wait: %v", err)
	}
	// Ending a call that was replaced leaves the new one registered.
	n, _, _ := g.Begin(1, func() (string, error) { return "new", nil })
	old := &Call[string]{done: make(chan struct{})}
	g.End(1, old, nil)
	if got, ok := g.Get(1); !ok || got != n {
		t.Fatal("End of another call removed the running one")
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, release chan struct{}) {
	t.Helper()
	close(release)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callers never returned")
	}
}
