// Package polltest waits in tests for what happens in the background (a
// replica joining, a collection running, a server draining): it polls a
// condition until it holds or a time limit fails the test. Only tests
// import it.
package polltest

import (
	"testing"
	"time"
)

// Every is how often Until checks its condition.
const Every = 20 * time.Millisecond

// Until polls cond every Every until it holds; if limit passes first it
// fails the test, saying what was awaited.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(Every)
	}
}
