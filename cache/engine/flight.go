package engine

import (
	"context"
	"sync"
)

// flightGroup runs one call per key at a time; callers that arrive while it
// runs share its result. Waiting honours the caller's context, and the call
// itself runs on a context detached from every caller.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done chan struct{}
	val  any
	err  error
}

// do runs fn once for key and reports whether this caller shared another's
// call (a coalesced waiter).
func (g *flightGroup) do(ctx context.Context, key string, fn func() (any, error)) (v any, shared bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flightCall{}
	}
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.val, true, c.err
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
	c := &flightCall{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()
	go func() {
		defer func() {
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(c.done)
		}()
		c.val, c.err = fn()
	}()
	select {
	case <-c.done:
		return c.val, false, c.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}
