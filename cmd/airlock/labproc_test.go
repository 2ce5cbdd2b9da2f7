package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// A lab whose registry port is taken exits 1 with one line saying so and
// what to do, before it has made anything: no state directory. With its
// emulator's port taken it also exits 1 naming --mar-listen, and leaves no
// registry state (the generated catalog is a cache). Started again with
// the ports free, on the same directory, it comes up and creates its
// cluster.
func TestLabFailedStartLeavesNothing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
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
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(airlockBinary(t), filepath.Join(root, "bin", "airlock")); err != nil {
		t.Fatal(err)
	}
	base := startLabProc(t, root)
	if code := httpStatus(base + "/admin/v1/clusters/lab"); code != 200 {
		t.Fatalf("cluster lab after the start: %d", code)
	}
}

// --nodes without containerd on PATH (or without root): the lab says which
// is missing and how to install it, and runs without nodes.
func TestLabNodesMissingTools(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	empty := t.TempDir()
	env := []string{"PATH=" + empty, "HOME=" + root}
	addr, marAddr := upstreamtest.Unreachable(t), upstreamtest.Unreachable(t)
	cmd := exec.Command(airlockBinary(t), "lab", "--dir", filepath.Join(root, "data"), "--listen", addr, "--mar-listen", marAddr, "--nodes", "2")
	cmd.Env = env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "airlock lab is up.") {
		select {
		case <-exited:
			t.Fatalf("the lab exited:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lab did not come up:\n%s", out)
		}
	}
	want := "airlock lab: --nodes 2: no nodes, this needs "
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "containerd (install it: scripts/install-tools.sh containerd)") ||
		(os.Geteuid() != 0) != strings.Contains(out.String(), "root (") {
		t.Errorf("the lab did not say what nodes need:\n%s", out)
	}
	if httpStatus("http://"+addr+"/readyz") != 200 {
		t.Errorf("the lab without nodes is not ready")
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the lab did not stop:\n%s", out)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.HasSuffix(out.String(), "airlock lab: stopped\n") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
