// Package proctest runs child processes for tests: their output is
// collected while the test reads it (Buffer), the test waits for a line
// the process prints or for a URL it serves, and whatever is still running
// when the test ends is killed. Only tests import it.
package proctest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// poll is how often the waits look again.
const poll = 20 * time.Millisecond

// failTail is how much of a process's output a failure message quotes.
const failTail = 8000

// Buffer is a bytes.Buffer safe for a process writing while a test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a child process a test started.
type Proc struct {
	// Name says which process it is in failure messages.
	Name string
	// Cmd is the command, started.
	Cmd *exec.Cmd
	// Stdout and Stderr hold the process's output; they are one Buffer
	// when it was started with Combined.
	Stdout, Stderr *Buffer

	exited chan struct{}
	err    error // after exited
}

// Option changes how Start runs a process.
type Option func(*Proc)

// Combined collects stdout and stderr in one Buffer, in the order written.
func Combined() Option {
	return func(p *Proc) { p.Stderr = p.Stdout }
}

// Start starts cmd, its output collected unless cmd already has a Stdout
// or Stderr of its own (those then go where cmd says and the Buffer stays
// empty). When the test ends a process still running is killed
// (SIGKILL) and waited for; a test that wants a gentler stop registers
// its own cleanup after Start, which runs first.
func Start(t testing.TB, name string, cmd *exec.Cmd, opts ...Option) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, exited: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Exited is closed once the process has exited and Err is known.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned (nil for exit 0); valid
// once Exited is closed.
func (p *Proc) Err() error {
	<-p.exited
	return p.err
}

// ExitCode is the process's exit code (-1 if a signal ended it); it waits
// for the process to exit.
func (p *Proc) ExitCode() int {
	<-p.exited
	return p.Cmd.ProcessState.ExitCode()
}

// Signal sends s to the process unless it has exited.
func (p *Proc) Signal(s syscall.Signal) {
	select {
	case <-p.exited:
	default:
		p.Cmd.Process.Signal(s)
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends s and waits up to timeout for the process to exit, failing
// the test if it does not; it returns the exit code.
func (p *Proc) Stop(t testing.TB, s syscall.Signal, timeout time.Duration) int {
	t.Helper()
	p.Signal(s)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("%s did not stop within %v on %v\n%s", p.Name, timeout, s, Tail(p.Output(), failTail))
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Output is the process's output so far: stdout then stderr, or both as
// written when Combined.
func (p *Proc) Output() string {
	if p.Stderr == p.Stdout {
		return p.Stdout.String()
	}
	return p.Stdout.String() + p.Stderr.String()
}

// status is Output, followed by how the process ended if it has.
func (p *Proc) status() string {
	select {
	case <-p.exited:
		return fmt.Sprintf("%s\n(%s ended: %v)", p.Output(), p.Name, p.err)
	default:
		return p.Output()
	}
}

// WaitOutput waits until the process's stdout (or else its stderr)
// matches re and returns the submatches. It fails the test if the
// process exits first or timeout passes.
func (p *Proc) WaitOutput(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	var m []string
	p.waitUntil(t, fmt.Sprintf("prints %q", re), timeout, func() bool {
		m = re.FindStringSubmatch(p.Stdout.String())
		if m == nil {
			m = re.FindStringSubmatch(p.Stderr.String())
		}
		return m != nil
	})
	return m
}

// WaitHTTP waits until a GET of url answers 200. It fails the test if the
// process exits first or timeout passes.
func (p *Proc) WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	p.waitUntil(t, "answers 200 at "+url, timeout, func() bool { return StatusOK(url) })
}

// waitUntil polls done until it holds, failing the test with the
// process's output if the process exits first or timeout passes.
func (p *Proc) waitUntil(t testing.TB, what string, timeout time.Duration, done func() bool) {
	t.Helper()
	Until(t, p.Name+" "+what, timeout, p.exited, p.status, done)
}

// Until polls cond until it holds. It fails the test, quoting the tail of
// output(), if exited is closed first (a nil channel never is) or timeout
// passes; what says what was awaited ("airlock serve print ...").
func Until(t testing.TB, what string, timeout time.Duration, exited <-chan struct{}, output func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-exited:
			if cond() {
				return
			}
			t.Fatalf("exited before: %s\n%s", what, Tail(output(), failTail))
		case <-time.After(poll):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s\n%s", timeout, what, Tail(output(), failTail))
		}
	}
}

// StatusOK reports whether a GET of url answers 200 within 5 s. It keeps
// no connection open (a leak check sees no idle connection of it).
func StatusOK(url string) bool {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Tail is the last n bytes of s, marked as cut when it is.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Binary is a program the tests run as a child process: $AIRLOCK_BIN when
// set (make sets it to bin/airlock), else a build of the main package Pkg
// (a directory, relative to the test's package), made once per test
// binary. The zero value with Pkg set is ready; Remove the build from
// TestMain after the tests ran.
type Binary struct {
	Pkg string

	once sync.Once
	dir  string
	path string
	err  error
}

// Path returns the program's absolute path, building it the first time
// when $AIRLOCK_BIN is not set; a missing $AIRLOCK_BIN or a failed build
// fails the test.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AIRLOCK_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("AIRLOCK_BIN=%s: %v (run make build)", p, err)
		}
		return abs
	}
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "airlock-test-bin"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "airlock")
		if out, err := exec.Command("go", "build", "-o", b.path, b.Pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.Pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the build, if Path made one.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
