// Package sleep waits for a while unless a context ends first: the pause
// of retry loops, back-offs and scheduled starts.
package sleep

import (
	"context"
	"time"
)

// For waits d or until ctx ends. It returns nil once d has passed and
// ctx's cause (ctx.Err() unless a cause was given) if ctx ended first;
// with d <= 0 it does not wait and returns ctx's error, if any.
func For(ctx context.Context, d time.Duration) error {
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

// Until waits until t as For does.
func Until(ctx context.Context, t time.Time) error { return For(ctx, time.Until(t)) }
