package sleep

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestFor(t *testing.T) {
	t.Parallel()
	cause := errors.New("lease lost")
	cases := []struct {
		name string
		ctx  func(t *testing.T) context.Context
		d    time.Duration
		want error
		took time.Duration
	}{
		{"waits", func(t *testing.T) context.Context { return t.Context() }, 2 * time.Second, nil, 2 * time.Second},
		{"zero", func(t *testing.T) context.Context { return t.Context() }, 0, nil, 0},
		{"negative", func(t *testing.T) context.Context { return t.Context() }, -time.Second, nil, 0},
		{"ended before", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, time.Hour, context.Canceled, 0},
		{"zero after end", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, 0, context.Canceled, 0},
		{"deadline", func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			t.Cleanup(cancel)
			return ctx
		}, time.Hour, context.DeadlineExceeded, time.Second},
		{"cause", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancelCause(t.Context())
			time.AfterFunc(3*time.Second, func() { cancel(cause) })
			return ctx
		}, time.Hour, cause, 3 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				err := For(c.ctx(t), c.d)
				if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
					t.Errorf("For(%v) = %v, want %v", c.d, err, c.want)
				}
				if took := time.Since(start); took != c.took {
					t.Errorf("For(%v) took %v, want %v", c.d, took, c.took)
				}
			})
		})
	}
}

func TestUntil(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Until(t.Context(), start.Add(5*time.Second)); err != nil || time.Since(start) != 5*time.Second {
			t.Errorf("Until: %v after %v", err, time.Since(start))
		}
		if err := Until(t.Context(), start); err != nil || time.Since(start) != 5*time.Second {
			t.Errorf("Until a past time: %v after %v", err, time.Since(start))
		}
	})
}
