// Package clocktest is a clock tests move by hand, for code that takes
// its time from an injected func() time.Time (token expiry, access
// records, upload idle timeouts). Only tests import it.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a time that changes only when Advance is called; it is safe
// for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock at start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time; pass the method value (c.Now) where a
// func() time.Time is wanted.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward (backward if d < 0).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
