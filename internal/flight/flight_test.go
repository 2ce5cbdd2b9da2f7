package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// joiners is how many callers joined the call running for key.
func joiners[K comparable, V any](g *Group[K, V], key K) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		return c.joined
	}
	return -1
}

func TestSharedRunsOncePerKey(t *testing.T) {
	t.Parallel()
	var s Shared[string, int]
	var calls, shared atomic.Int32
	release := make(chan struct{})
	fn := func() (int, error) {
		calls.Add(1)
		<-release
		return 42, nil
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, sh, err := s.Do(context.Background(), "k", fn)
			if err != nil || v != 42 {
				t.Errorf("caller %d: got %v %v", i, v, err)
			}
			if sh {
				shared.Add(1)
			}
		}()
	}
	for joiners(&s.g, "k") != 9 { // every caller but the leader waits on its call
		time.Sleep(time.Millisecond)
	}
	// A caller that gives up gets its context's error; the call goes on.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, sh, err := s.Do(ctx, "k", fn); !errors.Is(err, context.Canceled) || !sh {
		t.Fatalf("cancelled waiter: shared %v, %v", sh, err)
	}
	// Another key does not wait for this one.
	if v, sh, err := s.Do(context.Background(), "other", func() (int, error) { return 7, nil }); v != 7 || sh || err != nil {
		t.Fatalf("other key: %v %v %v", v, sh, err)
	}
	waitGroup(t, &wg, release)
	if calls.Load() != 1 || shared.Load() != 9 {
		t.Fatalf("fn ran %d times and %d callers shared its result, want 1 and 9", calls.Load(), shared.Load())
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
	// The call is still running for the others, and ends with its result.
	c, ok := s.g.Get("k")
	if !ok {
		t.Fatal("the call left the group with its leader")
	}
	close(release)
	if err := c.Wait(context.Background()); err != nil || c.Val.v != "done" {
		t.Fatalf("the call ended with %q, %v", c.Val.v, err)
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

// BeginAfter tells start whether a call of the group ended since the count
// the caller read: a call of another key counts, a call still running does
// not, and only an End that removed its call moves the count.
func TestGroupBeginAfter(t *testing.T) {
	t.Parallel()
	var g Group[int, string]
	seen := g.Ended()
	a, _, _ := g.Begin(1, func() (string, error) { return "a", nil })
	var ended []bool
	start := func(since bool) (string, error) { ended = append(ended, since); return "b", nil }
	b, _, _ := g.BeginAfter(2, seen, start)
	g.End(2, b, nil)
	if _, _, err := g.BeginAfter(3, seen, start); err != nil {
		t.Fatal(err)
	}
	g.End(1, &Call[string]{done: make(chan struct{})}, nil) // not the registered call: no end
	now := g.Ended()
	g.End(1, a, nil)
	if _, _, err := g.BeginAfter(4, now, start); err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, true}; len(ended) != 3 || ended[0] != want[0] || ended[1] != want[1] || ended[2] != want[2] {
		t.Fatalf("endedSince %v, want %v", ended, want)
	}
	if n := g.Ended(); n != 2 {
		t.Fatalf("Ended %d, want 2 (calls 2 and 1)", n)
	}
}
