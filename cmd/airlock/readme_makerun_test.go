package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/proctest"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// This file runs the README as a new user would: `make run` on a fresh
// clone, the pulls of the lab section, Ctrl-C, and `make run` again.

// needed ends a test that cannot run here: with CI=true it fails (CI must
// prove everything), otherwise it skips, saying how to get what is missing.
func needed(t *testing.T, what, fix string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s: %s", what, fix)
	}
	t.Skipf("%s: %s", what, fix)
}

// The README's `make run`, on a clone of this repository's committed HEAD,
// exactly as written (free ports come through LAB_FLAGS in the environment,
// which the Makefile passes on): the lab builds and starts, the lab
// section's commands (curl, crane) pull through it, Ctrl-C to make's
// process group stops it with exit 0 and no process left; `make run` again
// finds its state: the same pulls make zero upstream requests.
func TestReadmeMakeRun(t *testing.T) {
	t.Parallel()
	run := readmeCommands(t, "make-run")
	if cmd, _, _ := strings.Cut(strings.Join(run, "\n"), "#"); strings.TrimSpace(cmd) != "make run" {
		t.Fatalf("the README's make-run block is %q, want the one command make run", run)
	}
	pulls := readmeCommands(t, "lab-pull")
	for _, tool := range []string{"git", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			needed(t, tool+" is not on PATH", "install it (the README's requirements: Go and make; git to clone)")
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		needed(t, "this is not a git checkout", "run the tests in a clone of the repository")
	}
	root := strings.TrimSpace(string(top))
	crane := filepath.Join(root, "bin", "tools", "crane")
	if _, err := os.Stat(crane); err != nil {
		needed(t, "crane is not installed in bin/tools", "install it with scripts/install-tools.sh crane")
	}
	if st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); len(st) > 0 {
		t.Logf("the clone has the committed HEAD only; uncommitted changes are not tested:\n%s", st)
	}
	clone := filepath.Join(t.TempDir(), "airlock")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "clone", "--quiet", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}

	addr, marAddr := upstreamtest.Unreachable(t), upstreamtest.Unreachable(t)
	env := []string{
		"LAB_FLAGS=--listen " + addr + " --mar-listen " + marAddr,
		"PATH=" + filepath.Dir(crane) + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "LAB_FLAGS", "NODES", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "AIRLOCK_SERVER":
		default:
			env = append(env, kv)
		}
	}
	// The lab section talks to localhost:5000 and :6000; this lab is on
	// free ports.
	for i, c := range pulls {
		for _, r := range []struct{ from, to string }{{"localhost:5000", addr}, {"localhost:6000", marAddr}} {
			c = strings.ReplaceAll(c, r.from, r.to)
		}
		pulls[i] = c
	}
	if joined := strings.Join(pulls, "\n"); !strings.Contains(joined, addr) || !strings.Contains(joined, marAddr) || !strings.Contains(joined, "crane pull") {
		t.Fatalf("the lab-pull block no longer pulls with crane from localhost:5000 and reads localhost:6000:\n%s", joined)
	}

	for round := 1; round <= 2; round++ {
		m := startMake(t, ctx, clone, run[0], env)
		m.waitReady(t, "http://"+addr, 5*time.Minute)
		if want := "written to " + filepath.Join(clone, "data", "node"); !strings.Contains(m.out.String(), want) {
			t.Errorf("round %d: the lab did not say %q:\n%s", round, want, m.out)
		}
		os.Remove(filepath.Join(clone, "pause.tar"))
		for _, c := range pulls {
			out := runIn(t, ctx, clone, env, "sh", "-c", c)
			if strings.HasPrefix(c, "curl -sI") && !strings.HasPrefix(out, "HTTP/1.1 200") {
				t.Errorf("round %d: %s:\n%s", round, c, out)
			}
		}
		if fi, err := os.Stat(filepath.Join(clone, "pause.tar")); err != nil || fi.Size() == 0 {
			t.Errorf("round %d: crane pull wrote no pause.tar: %v", round, err)
		}
		st, err := mar.FetchStats(ctx, "http://"+marAddr)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case round == 1 && st.Count("GET", mar.KindBlobData, "") == 0:
			t.Errorf("the first run fetched no blob upstream: %+v", st.Requests)
		case round == 2 && st.Total() != 0:
			t.Errorf("the second run made %d upstream requests, want 0 (the state of the first run is gone?): %+v", st.Total(), st.Requests)
		}
		m.interrupt(t, 30*time.Second)
	}
}

// makeRun is `make run` running in its own process group, as a terminal
// would start it.
type makeRun struct {
	cmd  *exec.Cmd
	out  *proctest.Buffer
	done chan struct{}
}

func startMake(t *testing.T, ctx context.Context, dir, line string, env []string) *makeRun {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	m := &makeRun{cmd: cmd, out: &proctest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = m.out, m.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(m.done) }()
	stop := context.AfterFunc(ctx, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	t.Cleanup(func() {
		stop()
		select {
		case <-m.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-m.done
		}
	})
	return m
}

// waitReady waits until the lab at base answers /readyz and has printed
// its instructions.
func (m *makeRun) waitReady(t *testing.T, base string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			t.Fatalf("make run exited: %v\n%s", m.cmd.ProcessState, m.out)
		case <-time.After(100 * time.Millisecond):
		}
		if strings.Contains(m.out.String(), "Ctrl-C stops the lab.") && httpStatus(base+"/readyz") == 200 {
			return
		}
	}
	t.Fatalf("make run was not ready within %v\n%s", timeout, m.out)
}

// interrupt is Ctrl-C: SIGINT to the whole process group. make must end
// within timeout, the lab say it stopped, with no stack trace, and nothing
// of the group be left.
func (m *makeRun) interrupt(t *testing.T, timeout time.Duration) {
	t.Helper()
	pgid := m.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.done:
	case <-time.After(timeout):
		t.Fatalf("make run did not stop within %v of Ctrl-C\n%s", timeout, m.out)
	}
	// The lab exits 0 ("stopped"); make, interrupted itself, ends by the
	// signal (a shell shows 130), as any command stopped by Ctrl-C.
	out := m.out.String()
	ws := m.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !(ws.Exited() && (ws.ExitStatus() == 0 || ws.ExitStatus() == 130)) && !(ws.Signaled() && ws.Signal() == syscall.SIGINT) {
		t.Errorf("make run ended with %v after Ctrl-C, want exit 0 or 130, or SIGINT\n%s", m.cmd.ProcessState, out)
	}
	for _, bad := range []string{"panic", "goroutine ", "make: ***", "ERROR"} {
		if strings.Contains(out, bad) {
			t.Errorf("make run's output has %q:\n%s", bad, out)
		}
	}
	if !strings.HasSuffix(out, "airlock lab: stopped\n") {
		t.Errorf("the lab did not end with 'airlock lab: stopped':\n%s", out)
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("processes of make run are left after Ctrl-C (kill -0 -%d: %v)", pgid, err)
	}
}

// httpStatus is the status of a GET of url, 0 when it cannot be had.
func httpStatus(url string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// runIn runs argv in dir and returns its combined output; it must exit 0.
func runIn(t *testing.T, ctx context.Context, dir string, env []string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// The README's command-line block runs as written in bash (`source <(...)`),
// with airlock on PATH.
func TestReadmeCommandLine(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		needed(t, "bash is not on PATH", "install bash")
	}
	dir := t.TempDir()
	if err := os.Symlink(airlockBinary(t), filepath.Join(dir, "airlock")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx := t.Context()
	for _, c := range readmeCommands(t, "command-line") {
		out := runIn(t, ctx, dir, env, "bash", "-c", c)
		if strings.HasPrefix(c, "airlock version") && !regexp.MustCompile(`go1\.\d+`).MatchString(out) {
			t.Errorf("%s: %s", c, out)
		}
	}
}

// Every shell block of the README is run by a test (a `<!-- test: NAME`
// marker whose NAME a test in this directory or e2e reads with
// readmeCommands) or plainly marked as an example that needs something
// (`<!-- example: ...`); every fenced block names its language.
func TestReadmeBlocksMarked(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	reUse := regexp.MustCompile(`readmeCommands\(t, "([a-z0-9-]+)"\)`)
	for _, pattern := range []string{"*_test.go", "e2e/*_test.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range reUse.FindAllStringSubmatch(string(src), -1) {
				used[m[1]] = true
			}
		}
	}
	reTest := regexp.MustCompile(`^<!-- test: ([a-z0-9-]+)[ (]`)
	reExample := regexp.MustCompile(`^<!-- example: \S.* -->$`)
	lines := strings.Split(string(b), "\n")
	inBlock, blocks := false, 0
	for i, ln := range lines {
		if !strings.HasPrefix(ln, "```") {
			continue
		}
		if inBlock {
			inBlock = false
			continue
		}
		inBlock = true
		lang := strings.TrimPrefix(ln, "```")
		if lang == "" {
			t.Errorf("README.md:%d: a fenced block without a language (sh, text, yaml, toml, ...)", i+1)
			continue
		}
		if lang != "sh" && lang != "bash" && lang != "console" && lang != "shell" {
			continue
		}
		blocks++
		prev := ""
		if i > 0 {
			prev = lines[i-1]
		}
		if m := reTest.FindStringSubmatch(prev); m != nil {
			if !used[m[1]] {
				t.Errorf("README.md:%d: block %q is marked as tested, but no test reads it with readmeCommands", i+1, m[1])
			}
			continue
		}
		if !reExample.MatchString(prev) {
			t.Errorf("README.md:%d: a shell block neither run by a test (<!-- test: NAME ...) nor marked as an example saying what it needs (<!-- example: ... -->)", i+1)
		}
	}
	if blocks < 5 {
		t.Errorf("only %d shell blocks found in the README", blocks)
	}
}
