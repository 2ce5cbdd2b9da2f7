// Package azuritetest starts Azurite's blob service (the Azure Storage
// emulator, installed by scripts/install-tools.sh azurite) for tests: one
// process per call on a free 127.0.0.1 port with its data in a temp dir,
// stopped when the test ends (Start), or one shared by a package's tests
// (Shared, with Main in the package's TestMain).
package azuritetest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
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

// ContainerName returns a fresh container name, prefix and 12 random hex
// digits, for a test that shares one Azurite with others.
func ContainerName(prefix string) string {
	var rnd [6]byte
	rand.Read(rnd[:])
	return prefix + hex.EncodeToString(rnd[:])
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

// find returns the azurite-blob executable (azurite.Find), or ends the
// test with Find's error, which names the install command: skipped, or
// failed with CI=true.
func find(t testing.TB) string {
	t.Helper()
	p, err := azurite.Find()
	switch {
	case err == nil:
		return p
	case os.Getenv("CI") == "true":
		t.Fatalf("CI=true and %v", err)
	default:
		t.Skip(err)
	}
	return ""
}
