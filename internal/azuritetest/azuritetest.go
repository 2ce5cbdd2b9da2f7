// Package azuritetest starts Azurite's blob service (the Azure Storage
// emulator, installed by scripts/install-tools.sh azurite) for tests: one
// process per call on a free 127.0.0.1 port with its data in a temp dir,
// stopped when the test ends (Start), or one shared by a package's tests
// (Shared, with Main in the package's TestMain).
package azuritetest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/azurite"
	"github.com/airlock/airlock/internal/proctest"
)

// The well-known development account every Azurite accepts. The key is
// public (documented by Azure for the emulator) and protects nothing.
const (
	AccountName = azurite.AccountName
	AccountKey  = azurite.AccountKey
)

// Install is the command that installs Azurite into the repository.
const Install = "scripts/install-tools.sh azurite"

// binEnv names a variable that may point at an azurite-blob executable
// other than the repository's bin/tools copy.
const binEnv = "AIRLOCK_AZURITE_BLOB"

// startTimeout bounds how long Azurite may take to listen.
const startTimeout = 30 * time.Second

// Server is a running Azurite blob service.
type Server struct {
	// ServiceURL is the account's blob endpoint in path style,
	// http://127.0.0.1:<port>/devstoreaccount1.
	ServiceURL string
	// AccountName and AccountKey are the development account's.
	AccountName, AccountKey string
	// HTTPClient is a client for the SDK (azure.WithTransport) whose idle
	// connections are closed when the server stops, so that no keep-alive
	// goroutine outlives the tests (goleak).
	HTTPClient *http.Client

	bin, dir, port string
	mu             sync.Mutex
	proc           *azurite.Process // nil while stopped
	out            *proctest.Buffer // its output, all runs
}

// Start runs Azurite's blob service until the test ends. Without Azurite
// installed the test is skipped naming the install command, or fails with
// CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer(find(t), t.TempDir())
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("azurite output:\n%s", s.out)
		}
	})
	if err := s.launch(); err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	return s
}

func newServer(bin, dir string) *Server {
	return &Server{bin: bin, dir: dir, port: "0", AccountName: AccountName, AccountKey: AccountKey,
		HTTPClient: &http.Client{Transport: &http.Transport{}}, out: &proctest.Buffer{}}
}

// Stop stops Azurite (the data stays for Restart); stopping a stopped
// server does nothing. Idle connections of HTTPClient are closed.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	s.HTTPClient.CloseIdleConnections()
	if p != nil {
		p.Stop()
		s.HTTPClient.CloseIdleConnections()
	}
}

// Restart starts a stopped Azurite again on the same port with the same
// data, as a storage account that comes back after an outage.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.launch(); err != nil {
		t.Fatalf("azuritetest: restart: %v", err)
	}
}

// launch starts Azurite and waits until it accepts connections.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("azurite is running already")
	}
	p, err := azurite.Start(s.bin, s.dir, s.port, s.out, startTimeout)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.out)
	}
	s.proc, s.port, s.ServiceURL = p, p.Port(), p.ServiceURL()
	return nil
}

// find returns the azurite-blob executable, or ends the test: skipped with
// the install command, failed with CI=true.
func find(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, "node is not on PATH (Azurite runs on Node.js)")
	}
	if p := os.Getenv(binEnv); p != "" {
		return p
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", "tools", "azurite", "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p
	}
	unavailable(t, "azurite is not installed in bin/tools/azurite")
	return ""
}

func unavailable(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s: install it with %s", what, Install)
	}
	t.Skipf("%s: install it with %s", what, Install)
}

// repoRoot is the nearest directory above the working directory holding
// go.mod and scripts/install-tools.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, e1 := os.Stat(filepath.Join(dir, "go.mod"))
		_, e2 := os.Stat(filepath.Join(dir, "scripts", "install-tools.sh"))
		if e1 == nil && e2 == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("azuritetest: repository root not found")
		}
		dir = parent
	}
}
