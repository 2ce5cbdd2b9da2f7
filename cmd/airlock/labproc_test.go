package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/proctest"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// runLab runs `airlock lab args...` in dir to its end (it must end within
// a minute) and returns its exit code, stdout and stderr.
func runLab(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, airlockBinary(t), append([]string{"lab"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("airlock lab %v did not end: %s%s", args, stdout.String(), stderr.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// labRoot is a directory laid out as a checkout's root for the lab:
// bin/airlock is the binary under test.
func labRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(airlockBinary(t), filepath.Join(root, "bin", "airlock")); err != nil {
		t.Fatal(err)
	}
	return root
}

// labProc is `bin/airlock lab` running as a child process, its stdout
// and stderr in one buffer.
type labProc struct {
	*proctest.Proc
	base string // the registry's URL
}

// startLabProc runs root's bin/airlock lab (with args, and env if not nil)
// with its state in root/data on free ports, as `make run` would, until the
// test ends: then Ctrl-C must stop it within 30 s, with exit 0 and its last
// line "airlock lab: stopped". It returns once the lab is ready.
func startLabProc(t *testing.T, root string, env []string, args ...string) *labProc {
	t.Helper()
	addr, marAddr := upstreamtest.Unreachable(t), upstreamtest.Unreachable(t)
	cmd := exec.Command(filepath.Join(root, "bin", "airlock"), append([]string{"lab", "--dir", filepath.Join(root, "data"),
		"--listen", addr, "--mar-listen", marAddr}, args...)...)
	cmd.Dir, cmd.Env = root, env
	l := &labProc{Proc: proctest.Start(t, "the lab", cmd, proctest.Combined()), base: "http://" + addr}
	t.Cleanup(func() {
		l.Signal(syscall.SIGINT) // Ctrl-C, as the README says
		select {
		case <-l.Exited():
		case <-time.After(30 * time.Second):
			l.Kill()
			t.Errorf("the lab did not stop on SIGINT\n%s", l.Output())
			return
		}
		if code := l.ExitCode(); code != 0 || !strings.HasSuffix(l.Output(), "airlock lab: stopped\n") {
			t.Errorf("the lab exited %d on SIGINT:\n%s", code, l.Output())
		}
	})
	l.WaitHTTP(t, l.base+"/readyz", time.Minute)
	return l
}

// waitOutput waits until the lab's output holds s (it is copied from the
// process's pipe a little after the process writes it) and returns it.
func (l *labProc) waitOutput(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := l.Output()
		if strings.Contains(out, s) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A lab whose registry port is taken exits 1 with one line saying so and
// what to do, before it has made anything: no state directory. With its
// emulator's port taken it also exits 1 naming --mar-listen, and leaves no
// registry state (the generated catalog is a cache). Started again with
// the ports free, on the same directory, it comes up and creates its
// cluster.
func TestLabFailedStartLeavesNothing(t *testing.T) {
	t.Parallel()
	root := labRoot(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := upstreamtest.Unreachable(t)

	code, stdout, stderr := runLab(t, root, os.Environ(), "--dir", "data", "--listen", taken.Addr().String(), "--mar-listen", free)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || stdout != "" || len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "airlock lab: --listen "+taken.Addr().String()+": address already in use: ") ||
		!strings.Contains(lines[0], "LAB_FLAGS=") {
		t.Fatalf("registry port taken: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "data")); !os.IsNotExist(err) {
		t.Errorf("the failed start made %s (%v)", filepath.Join(root, "data"), err)
	}

	code, _, stderr = runLab(t, root, os.Environ(), "--dir", "data", "--listen", free, "--mar-listen", taken.Addr().String())
	if code != 1 || !strings.Contains(stderr, "airlock lab: --mar-listen "+taken.Addr().String()+": address already in use: ") {
		t.Fatalf("emulator port taken: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "airlock")); !os.IsNotExist(err) {
		t.Errorf("the failed start left registry state in %s (%v)", filepath.Join(root, "data", "airlock"), err)
	}

	// The ports free: the lab comes up in ./data, its cluster made afresh.
	taken.Close()
	base := startLabProc(t, root, nil).base
	if code := httpStatus(base + "/admin/v1/clusters/lab"); code != 200 {
		t.Fatalf("cluster lab after the start: %d", code)
	}
}

// --nodes without containerd on PATH (or without root): the lab says which
// is missing and how to install it, and runs without nodes.
func TestLabNodesMissingTools(t *testing.T) {
	t.Parallel()
	root := labRoot(t)
	l := startLabProc(t, root, []string{"PATH=" + t.TempDir(), "HOME=" + root}, "--nodes", "2")
	out := l.waitOutput(t, "Ctrl-C stops the lab.")
	if !strings.Contains(out, "airlock lab: --nodes 2: no nodes, this needs ") ||
		!strings.Contains(out, "containerd (install it: scripts/install-tools.sh containerd)") ||
		(os.Geteuid() != 0) != strings.Contains(out, "root (") || !strings.Contains(out, "the lab runs without nodes") {
		t.Errorf("the lab did not say what nodes need:\n%s", out)
	}
}
