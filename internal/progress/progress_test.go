package progress

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// ansi strips terminal escape sequences.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// Without a terminal each image gets one plain line; on one, a bar of
// bytes and images, with failures printed above it.
func TestImages(t *testing.T) {
	t.Parallel()
	var plain bytes.Buffer
	p := NewImages(&plain, "warm", 2, Terminal(false))
	p.Expect(30)
	p.Write(make([]byte, 10))
	p.Finished("a:1", nil, "sha256:x 1 blobs 10 B")
	p.Finished("b:1", errors.New("boom"), "")
	p.Close()
	if plain.String() != "ok   a:1 sha256:x 1 blobs 10 B\nFAIL b:1: boom\n" || p.Bytes() != 10 {
		t.Errorf("plain output %q, %d bytes", plain.String(), p.Bytes())
	}

	var tty bytes.Buffer // written by mpb until Close returns
	p = NewImages(&tty, "warm", 2, Terminal(true))
	p.Expect(2 << 20)
	p.Write(make([]byte, 1<<20))
	p.Finished("a:1", nil, "")
	p.Finished("b:1", errors.New("boom"), "")
	p.Close()
	out := strings.Join(strings.Fields(ansi.ReplaceAllString(tty.String(), "")), " ")
	for _, want := range []string{"FAIL b:1: boom ", "warm 2/2 images, 1 failed [", "] 50 % 1.0 MiB / 2.0 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	if strings.Contains(out, "ok   a:1") {
		t.Errorf("a terminal shows the bar, not a line per image:\n%q", out)
	}
}

// A task prints a line per tenth (at most one a second) and one at the
// end; found done at once it prints nothing.
func TestTask(t *testing.T) {
	t.Parallel()
	var plain bytes.Buffer
	task := NewTask(&plain, "generating", Terminal(false))
	for _, d := range []int64{0, 5, 50, 100} {
		task.Update(d, 100)
	}
	task.Close()
	if out := plain.String(); !strings.HasPrefix(out, "generating: 0%\n") || !regexp.MustCompile(`generating: done in \d`).MatchString(out) || strings.Count(out, "\n") != 2 {
		t.Errorf("plain task output %q", out)
	}
	plain.Reset()
	task = NewTask(&plain, "generating", Terminal(false))
	task.Update(100, 100)
	task.Close()
	if plain.Len() != 0 {
		t.Errorf("a task found done printed %q", plain.String())
	}
	var tty bytes.Buffer // written by mpb until Close returns
	task = NewTask(&tty, "generating", Terminal(true))
	task.Update(10, 40)
	task.Update(40, 40)
	task.Close()
	if out := strings.Join(strings.Fields(ansi.ReplaceAllString(tty.String(), "")), " "); !strings.Contains(out, "generating [") || !strings.Contains(out, "100 %") {
		t.Errorf("terminal task output %q", out)
	}
}

// Steps: a line as each starts, or a bar with the one running.
func TestSteps(t *testing.T) {
	t.Parallel()
	var plain bytes.Buffer
	s := NewSteps(&plain, Terminal(false))
	s.Start(0, 2, "storm airlock run 1/1")
	s.Start(1, 2, "storm direct run 1/1")
	s.Close()
	if out := plain.String(); !strings.HasPrefix(out, "[1/2] 0s storm airlock run 1/1\n[2/2] ") {
		t.Errorf("plain steps %q", out)
	}
	var tty bytes.Buffer // written by mpb until Close returns
	s = NewSteps(&tty, Terminal(true))
	s.Start(0, 2, "storm airlock run 1/1")
	s.Close()
	if out := ansi.ReplaceAllString(tty.String(), ""); !strings.Contains(out, "2/2") || !strings.Contains(out, "done") {
		t.Errorf("terminal steps %q", out)
	}
}

// Steps.Nodes: plain lines at most every two seconds and at the end; on a
// terminal, after the step's name.
func TestStepsNodes(t *testing.T) {
	t.Parallel()
	var plain bytes.Buffer
	s := NewSteps(&plain, Terminal(false))
	s.Start(0, 1, "pull storm registry run 1/1")
	s.Nodes(0, 10, 0, 10)
	s.Nodes(3, 7, 1, 10) // within two seconds of the last line: not printed
	s.Nodes(10, 0, 1, 10)
	s.Nodes(10, 0, 1, 10) // the same again: not printed
	s.Note("agent 0 joined")
	s.Close()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[1], "nodes 0/10 done, 10 running, 0 failed") ||
		!strings.HasSuffix(lines[2], "nodes 10/10 done, 0 running, 1 failed") || lines[3] != "agent 0 joined" {
		t.Errorf("plain node lines %q", lines)
	}
	var tty bytes.Buffer
	s = NewSteps(&tty, Terminal(true))
	s.Start(0, 1, "pull storm")
	s.Nodes(4, 6, 0, 10)
	s.Close()
	if out := ansi.ReplaceAllString(tty.String(), ""); !strings.Contains(out, "nodes 4/10 done, 6 running, 0 failed") {
		t.Errorf("terminal node counts %q", out)
	}
}

func TestHuman(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 647 << 20: "647 MiB"} {
		if got := Human(n); got != want {
			t.Errorf("Human(%d) = %q, want %q", n, got, want)
		}
	}
}
