package azuritetest

import (
	"maps"
	"slices"
	"testing"
)

// Tests are tests that share one running Azurite, each on containers of
// its own, by subtest name.
type Tests map[string]func(t *testing.T, srv *Server)

// Run runs each test as a parallel subtest of t on srv, in the order of
// their names.
func (ts Tests) Run(t *testing.T, srv *Server) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(ts)) {
		run := ts[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run(t, srv)
		})
	}
}
