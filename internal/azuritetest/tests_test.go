package azuritetest

import (
	"slices"
	"sync"
	"testing"
)

// Run runs every test, as a parallel subtest, on the server it is given.
func TestTestsRun(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	var mu sync.Mutex
	var ran []string
	record := func(t *testing.T, s *Server) {
		if s != srv {
			t.Errorf("%s ran on %p, want %p", t.Name(), s, srv)
		}
		mu.Lock()
		ran = append(ran, t.Name())
		mu.Unlock()
	}
	t.Run("group", func(t *testing.T) {
		Tests{"B": record, "A/nested": record, "C": record}.Run(t, srv)
	})
	slices.Sort(ran)
	want := []string{"TestTestsRun/group/A/nested", "TestTestsRun/group/B", "TestTestsRun/group/C"}
	if !slices.Equal(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
}
