// Package flight runs one call per key at a time: the first caller of a key
// (the leader) registers a call, callers that arrive while it runs join it
// instead of starting their own, and every wait honours the waiter's own
// context. It is airlock's one single-flight mechanism: the engine's blob
// fills and coalesced upstream requests, and the upstream client's logins.
package flight

import (
	"context"
	"sync"
)

// Group holds at most one running call per key. The zero value is ready to
// use; a Group must not be copied after first use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*Call[V]
	ended uint64 // calls removed by End so far
}

// Call is one run for a key.
type Call[V any] struct {
	// Val is what the leader registered (see Begin); it never changes, so
	// joiners may use it while the call runs.
	Val    V
	done   chan struct{}
	err    error
	joined int // Begins that returned this call to a joiner (under the group's lock)
}

// Begin returns the call running for key and leader false, or, when none
// runs, registers a new call holding the value start makes and returns it
// with leader true; the leader must End it. start runs under the group's
// lock, so it sees no call for key come or go; if it fails, nothing is
// registered and its error is returned.
func (g *Group[K, V]) Begin(key K, start func() (V, error)) (c *Call[V], leader bool, err error) {
	return g.begin(key, func(uint64) (V, error) { return start() })
}

// Ended counts the calls that have ended (left the group) so far.
func (g *Group[K, V]) Ended() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ended
}

// BeginAfter is Begin for a caller that looked at key's state (say, a
// store) when Ended was seen: start learns whether any call of the group
// has ended since (when none has, no call for key came and went in
// between, so what the caller saw still holds for this group's calls).
func (g *Group[K, V]) BeginAfter(key K, seen uint64, start func(endedSince bool) (V, error)) (c *Call[V], leader bool, err error) {
	return g.begin(key, func(ended uint64) (V, error) { return start(ended != seen) })
}

// begin is Begin, start given the Ended count under the group's lock.
func (g *Group[K, V]) begin(key K, start func(ended uint64) (V, error)) (c *Call[V], leader bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		c.joined++
		return c, false, nil
	}
	v, err := start(g.ended)
	if err != nil {
		return nil, false, err
	}
	if g.calls == nil {
		g.calls = map[K]*Call[V]{}
	}
	c = &Call[V]{Val: v, done: make(chan struct{})}
	g.calls[key] = c
	return c, true, nil
}

// End removes c from the group (a later Begin for key starts a new call),
// then records err as its outcome and wakes its waiters.
func (g *Group[K, V]) End(key K, c *Call[V], err error) {
	g.mu.Lock()
	if g.calls[key] == c {
		delete(g.calls, key)
		g.ended++
	}
	g.mu.Unlock()
	c.err = err
	close(c.done)
}

// Get returns the call running for key, if any.
func (g *Group[K, V]) Get(key K) (*Call[V], bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.calls[key]
	return c, ok
}

// Len is the number of calls running.
func (g *Group[K, V]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// Done is closed when the call has ended.
func (c *Call[V]) Done() <-chan struct{} { return c.done }

// Wait blocks until the call has ended and returns its outcome, or returns
// ctx's error first if ctx ends; the call goes on either way.
func (c *Call[V]) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shared runs a function once per key among concurrent callers and shares
// its result. The zero value is ready to use.
type Shared[K comparable, R any] struct {
	g Group[K, *result[R]]
}

type result[R any] struct{ v R }

// Do runs fn for key unless a call for key is running, in which case it
// waits for that call's result instead; shared reports the latter (a
// coalesced caller). fn runs on its own goroutine, detached from every
// caller: a caller whose ctx ends gets ctx's error at once, and the call
// goes on for the others. fn must bound its own work.
func (s *Shared[K, R]) Do(ctx context.Context, key K, fn func() (R, error)) (v R, shared bool, err error) {
	c, leader, _ := s.g.Begin(key, func() (*result[R], error) { return &result[R]{}, nil })
	if leader {
		go func() {
			v, err := fn()
			c.Val.v = v // published to waiters by End's close
			s.g.End(key, c, err)
		}()
	}
	if err := c.Wait(ctx); err != nil {
		var zero R
		return zero, !leader, err
	}
	return c.Val.v, !leader, nil
}
