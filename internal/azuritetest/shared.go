package azuritetest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// shared is the one Azurite of a test binary whose TestMain runs Main. A
// test binary is one package's tests: this state lives as long as it.
var shared struct {
	mu    sync.Mutex
	main  bool // Main runs the tests
	srv   *Server
	err   error
	tried bool
	dir   string
}

// Main runs the package's tests (call it from TestMain: os.Exit(Main(m)))
// so that those calling Shared share one Azurite, started by the first of
// them and stopped once every test has run, its idle client connections
// closed: a goroutine leak check after Main sees none of them.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

// Shared returns the package's Azurite, started on first use and shared
// by every test (each should use containers of its own). Without Azurite
// installed the test is skipped naming the install command, or fails with
// CI=true. It needs Main in the package's TestMain.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := find(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("azuritetest.Shared needs azuritetest.Main in the package's TestMain")
	}
	if !shared.tried {
		shared.tried = true
		shared.srv, shared.err = startShared(bin)
	}
	if shared.err != nil {
		t.Fatalf("azuritetest: %v", shared.err)
	}
	return shared.srv
}

func startShared(bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "azuritetest-")
	if err != nil {
		return nil, err
	}
	shared.dir = dir
	s := newServer(bin, dir)
	if err := s.launch(); err != nil {
		return nil, fmt.Errorf("shared azurite: %w", err)
	}
	return s, nil
}
