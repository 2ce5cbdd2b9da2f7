// Package leaktest is the goroutine-leak check of the packages' TestMain:
// a package's tests pass only if no goroutine they started outlives them
// (go.uber.org/goleak). Only tests import it.
package leaktest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// IdleConns ignores the goroutines of HTTP clients' idle keep-alive
// connections, which outlive the test that used them briefly (an SDK's
// pooled client, a client a test cannot close).
func IdleConns() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
}

// Main runs the package's tests and exits: non-zero if a test failed, or
// if a goroutine other than those opts ignore is left once they pass.
// A package's TestMain is then `func TestMain(m *testing.M) { leaktest.Main(m) }`.
func Main(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, opts...)
}

// Check is for a TestMain that does more than run the tests (shares a
// server, removes a directory): given the exit code of m.Run and what it
// did after, it returns that code, or 1 (with the leaked goroutines on
// stderr) if the tests passed but left a goroutine behind.
func Check(code int, opts ...goleak.Option) int {
	if code != 0 {
		return code
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		return 1
	}
	return code
}
