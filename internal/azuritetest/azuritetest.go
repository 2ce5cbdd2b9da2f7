// Package azuritetest starts Azurite's blob service (the Azure Storage
// emulator, installed by scripts/install-tools.sh azurite) for tests: one
// process per call on a free 127.0.0.1 port with its data in a temp dir,
// stopped when the test ends (Start), or one shared by a package's tests
// (Shared, with Main in the package's TestMain).
package azuritetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The well-known development account every Azurite accepts. The key is
// public (documented by Azure for the emulator) and protects nothing.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
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
	proc           *process // nil while stopped
}

// process is one run of Azurite.
type process struct {
	cancel context.CancelFunc
	exited chan error
	out    *syncBuffer
}

// listening is the line Azurite prints once its blob service accepts
// connections; with --blobPort 0 it names the port the kernel chose.
var listening = regexp.MustCompile(`successfully listens on (http://127\.0\.0\.1:[0-9]+)`)

// Start runs Azurite's blob service until the test ends. Without Azurite
// installed the test is skipped naming the install command, or fails with
// CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: find(t), dir: t.TempDir(), port: "0", AccountName: AccountName, AccountKey: AccountKey,
		HTTPClient: newClient()}
	t.Cleanup(func() {
		if out := s.Stop(); t.Failed() {
			t.Logf("azurite output:\n%s", out)
		}
	})
	if err := s.launch(); err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	return s
}

// newClient is an HTTP client of its own for the SDK: its idle
// connections close with the server.
func newClient() *http.Client { return &http.Client{Transport: &http.Transport{}} }

// Stop stops Azurite (the data stays for Restart) and returns its output;
// stopping a stopped server does nothing. Idle connections of HTTPClient
// are closed.
func (s *Server) Stop() string {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	s.HTTPClient.CloseIdleConnections()
	if p == nil {
		return ""
	}
	p.cancel()
	<-p.exited
	s.HTTPClient.CloseIdleConnections()
	return p.out.String()
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
	argv := []string{
		s.bin, "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
		"--blobHost", "127.0.0.1", "--blobPort", s.port, "--location", s.dir,
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second // then SIGKILL
	setDeathSignal(cmd)
	out := &syncBuffer{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	urls := make(chan string, 1)
	go scan(stdout, out, urls)
	p := &process{cancel: cancel, exited: make(chan error, 1), out: out}
	go func() { p.exited <- cmd.Wait(); close(p.exited) }()
	stop := func() {
		cancel()
		<-p.exited
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var base string
	select {
	case base = <-urls:
	case err := <-p.exited:
		cancel()
		return fmt.Errorf("azurite exited before listening: %v\n%s", err, out.String())
	case <-timer.C:
		stop()
		return fmt.Errorf("azurite did not listen within %s\n%s", startTimeout, out.String())
	}
	if err := waitDial(base, startTimeout); err != nil {
		stop()
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	s.port = base[strings.LastIndexByte(base, ':')+1:]
	s.ServiceURL = base + "/" + AccountName
	s.proc = p
	return nil
}

// scan copies Azurite's stdout to out and sends the blob endpoint once it
// is announced.
func scan(r io.Reader, out io.Writer, urls chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		if m := listening.FindStringSubmatch(line); m != nil && !sent {
			urls <- m[1]
			sent = true
		}
	}
}

// waitDial waits until a TCP connection to base succeeds.
func waitDial(base string, limit time.Duration) error {
	addr := base[len("http://"):]
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("azurite at %s does not accept connections: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// syncBuffer collects a process's output while a test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
