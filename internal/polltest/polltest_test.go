package polltest

import (
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of ending the
// test it belongs to.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	for _, a := range args {
		if s, ok := a.(string); ok {
			r.failed += " " + s
		}
	}
	panic(r)
}

// until runs Until on a recorder and returns what it failed with.
func until(t *testing.T, limit time.Duration, what string, cond func() bool) (failed string) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != any(r) {
			panic(p)
		}
		failed = r.failed
	}()
	Until(r, limit, what, cond)
	return ""
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		start := time.Now()
		if failed := until(t, time.Second, "the third call", func() bool { return calls.Add(1) == 3 }); failed != "" {
			t.Fatalf("failed: %s", failed)
		}
		if took, want := time.Since(start), 2*Every; took != want {
			t.Errorf("returned after %v, want %v", took, want)
		}
	})
}

func TestUntilFailsAfterTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		failed := until(t, time.Second, "what never happens", func() bool { return false })
		if !strings.Contains(failed, "what never happens") {
			t.Errorf("failed with %q, want it to say what was awaited", failed)
		}
		if took := time.Since(start); took < time.Second || took > time.Second+Every {
			t.Errorf("failed after %v, want just past 1s", took)
		}
	})
}
