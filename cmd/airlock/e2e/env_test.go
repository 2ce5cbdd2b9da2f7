package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/proctest"
)

// Tools the suite runs, and the command that installs each.
var toolInstall = map[string]string{
	"conformance": "scripts/install-tools.sh conformance",
	"crane":       "scripts/install-tools.sh crane",
	"oras":        "scripts/install-tools.sh oras",
	"containerd":  "scripts/install-tools.sh containerd",
	"ctr":         "scripts/install-tools.sh containerd",
	"containerd2": "scripts/install-tools.sh containerd2",
	"ctr2":        "scripts/install-tools.sh containerd2",
	"skopeo":      "scripts/install-tools.sh skopeo",
	"ip":          "scripts/install-tools.sh ip",
}

// Go tools live in <repo>/bin/tools, at these paths (pinned by
// scripts/install-tools.sh; containerd 2.x in a directory of its own, so its
// binaries never shadow the distribution's 1.6); the others come from the
// distribution's packages, on PATH.
var goTools = map[string]string{
	"conformance": "conformance",
	"crane":       "crane",
	"oras":        "oras",
	"containerd2": "containerd2/containerd",
	"ctr2":        "containerd2/ctr",
}

// unavailable ends a test that cannot run here: with CI=true it fails (a CI
// run must prove everything), otherwise it skips naming the fix.
func unavailable(t *testing.T, what, fix string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s: %s", what, fix)
	}
	t.Skipf("%s: %s", what, fix)
}

// needTool returns the path of an external tool, or ends the test.
func needTool(t *testing.T, name string) string {
	t.Helper()
	if rel, ok := goTools[name]; ok {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, "bin", "tools", filepath.FromSlash(rel))
		if _, err := os.Stat(p); err == nil {
			return p
		}
		unavailable(t, "bin/tools/"+rel+" is not installed", "install it with "+toolInstall[name])
	}
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, name+" is not on PATH", "install it with "+toolInstall[name])
	}
	return p
}

// needRoot ends the test unless it runs as root (containerd, namespaces).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "this test needs root (containerd, network namespaces)", "run it as root, e.g. sudo -E make e2e")
	}
}

// startProc starts argv (with extra environment) and stops it at cleanup
// by its own PID: SIGTERM, then SIGKILL after 10 s; if the test failed,
// the tail of its output is logged.
func startProc(t *testing.T, name string, env []string, argv ...string) *proctest.Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second // then SIGKILL
	// If the test binary dies without cleaning up (go test -timeout), the
	// kernel kills this process too (ip netns exec keeps it across exec).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := proctest.Start(t, name, cmd)
	t.Cleanup(func() {
		cancel() // SIGTERM to this PID only; SIGKILL after WaitDelay
		<-p.Exited()
		if t.Failed() {
			t.Logf("%s (pid %d) exited: %v\n--- stdout\n%s\n--- stderr\n%s", name, cmd.Process.Pid, p.Err(),
				tail(p.Stdout.String(), 3000), tail(p.Stderr.String(), 6000))
		}
	})
	return p
}

// runCmd runs a short command with a deadline and returns its stdout; the
// error carries stderr.
func runCmd(ctx context.Context, timeout time.Duration, env []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timeout %v)", ctx.Err(), timeout)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(stderr.String(), 4000))
	}
	return stdout.String(), nil
}

// mustRun is runCmd that fails the test on error.
func mustRun(t *testing.T, ctx context.Context, timeout time.Duration, argv ...string) string {
	t.Helper()
	out, err := runCmd(ctx, timeout, nil, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testContext bounds a whole test: every command it runs derives its own
// deadline from this context.
func testContext(t *testing.T, max time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), max)
	t.Cleanup(cancel)
	return ctx
}

// socketDir is a temporary directory removed at cleanup (t.TempDir), unless
// its path is too long for the unix sockets placed in it (108 bytes): then
// a shorter one under os.TempDir().
func socketDir(t *testing.T, prefix string) string {
	t.Helper()
	if dir := t.TempDir(); len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

func tail(s string, n int) string { return proctest.Tail(s, n) }
