// Package progress reports the progress of long command-line work on a
// stream, usually standard error: on a terminal, bars drawn by mpb and
// redrawn in place; anywhere else (a file, a pipe, CI logs), plain lines
// that read well in order. Three shapes cover airlock's commands: Images
// (a run over an image list that moves bytes: warm, bundle export), Task
// (one job of known size: generating the emulator's catalog) and Steps (a
// sequence of runs: the bench).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// Option configures a report.
type Option func(*options)

type options struct {
	terminal *bool
	refresh  time.Duration
}

// Terminal says whether the output is a terminal instead of asking it
// (tests draw bars into a buffer).
func Terminal(tty bool) Option { return func(o *options) { o.terminal = &tty } }

// IsTerminal reports whether w is a terminal that bars can be drawn on: a
// character device with a width (a pseudo-terminal nobody sized, as under
// script(1), has none).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}

// Human formats a byte count with binary units: "10 B", "1.5 MiB",
// "647 MiB".
func Human(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// bars is one mpb container with one bar, or nothing when the output is
// not a terminal.
type bars struct {
	w    io.Writer
	p    *mpb.Progress // nil: plain lines
	bar  *mpb.Bar
	once sync.Once
	out  sync.Mutex // serializes plain lines
}

func newBars(w io.Writer, opts []Option) *bars {
	o := options{refresh: 150 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	tty := IsTerminal(w)
	if o.terminal != nil {
		tty = *o.terminal
	}
	b := &bars{w: w}
	if tty {
		copts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(100), mpb.WithRefreshRate(o.refresh)}
		if o.terminal != nil {
			copts = append(copts, mpb.ForceTTY(), mpb.WithAutoRefresh())
		}
		b.p = mpb.New(copts...)
	}
	return b
}

// println prints a line above the bar, or a plain line.
func (b *bars) println(format string, a ...any) {
	if b.p != nil {
		fmt.Fprintf(b.p, format+"\n", a...)
		return
	}
	b.out.Lock()
	defer b.out.Unlock()
	fmt.Fprintf(b.w, format+"\n", a...)
}

// finish completes the bar (unless it was aborted) and waits until it is
// drawn.
func (b *bars) finish() {
	if b.p == nil {
		return
	}
	b.once.Do(func() {
		if b.bar != nil && !b.bar.Aborted() {
			b.bar.SetTotal(-1, true)
		}
		b.p.Wait()
	})
}

// barStyle is the bar of every report.
func barStyle() mpb.BarFillerBuilder {
	return mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]")
}

// Images reports a run over an image list that moves bytes (warm, bundle
// export): on a terminal one bar of bytes received against bytes expected,
// with images done, failed, and the rate; failures are printed above it.
// Elsewhere one line per image as it finishes ("ok   REF DETAIL", "FAIL
// REF: ERROR"). Images is an io.Writer that counts the bytes received. It
// is safe for concurrent use.
type Images struct {
	*bars
	mu                   sync.Mutex
	images, done, failed int
	total, bytes         int64
}

// NewImages reports on w a run that verb (warm, export) does to images.
func NewImages(w io.Writer, verb string, images int, opts ...Option) *Images {
	p := &Images{bars: newBars(w, opts), images: images}
	if p.p != nil {
		p.bar = p.p.New(0, barStyle(),
			mpb.PrependDecorators(decor.Name(verb+" "), decor.Any(func(decor.Statistics) string {
				p.mu.Lock()
				defer p.mu.Unlock()
				s := fmt.Sprintf("%d/%d images", p.done, p.images)
				if p.failed > 0 {
					s += fmt.Sprintf(", %d failed", p.failed)
				}
				return s + " "
			})),
			mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Counters(decor.SizeB1024(0), " % .1f / % .1f"),
				decor.AverageSpeed(decor.SizeB1024(0), " % .1f/s")))
	}
	return p
}

// Write counts bytes received.
func (p *Images) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.bytes += int64(len(b))
	p.mu.Unlock()
	if p.bar != nil {
		p.bar.IncrBy(len(b))
	}
	return len(b), nil
}

// Bytes is the count of bytes received.
func (p *Images) Bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// Expect adds n bytes to the total once an image's size is known.
func (p *Images) Expect(n int64) {
	p.mu.Lock()
	p.total += n
	total := p.total
	p.mu.Unlock()
	if p.bar != nil {
		p.bar.SetTotal(total, false)
	}
}

// Finished records an image's outcome: err, or what was done (detail).
func (p *Images) Finished(ref string, err error, detail string) {
	p.mu.Lock()
	p.done++
	if err != nil {
		p.failed++
	}
	p.mu.Unlock()
	switch {
	case err != nil:
		p.println("FAIL %s: %v", ref, err)
	case p.p == nil:
		p.println("ok   %s %s", ref, detail)
	}
}

// Close completes the bar; with failures it stays where it stopped.
func (p *Images) Close() {
	p.mu.Lock()
	failed := p.failed > 0
	p.mu.Unlock()
	if failed && p.bar != nil {
		p.bar.Abort(false)
	}
	p.finish()
}

// Task reports one job of known size (generating the emulator's catalog):
// on a terminal a bar with the percentage and the time spent; elsewhere a
// line at every tenth done (at most one a second) and one at the end. A
// job found done at once (everything cached) prints nothing. It is safe
// for concurrent use.
type Task struct {
	*bars
	name     string
	start    time.Time
	mu       sync.Mutex
	shown    bool // a plain line was printed
	lastStep int64
	lastLine time.Time
}

// NewTask reports on w the job name, e.g. "generating the MAR catalog".
func NewTask(w io.Writer, name string, opts ...Option) *Task {
	return &Task{bars: newBars(w, opts), name: name, start: time.Now(), lastStep: -1}
}

// Update says done of total units are done.
func (t *Task) Update(done, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastStep < 0 && done >= total {
		t.lastStep = 10 // found done: nothing to report
		return
	}
	if t.p != nil {
		if t.bar == nil {
			t.bar = t.p.New(total, barStyle(), mpb.PrependDecorators(decor.Name(t.name+" ")),
				mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)))
		}
		t.bar.SetTotal(total, false)
		t.bar.SetCurrent(done)
		return
	}
	step := int64(0)
	if total > 0 {
		step = done * 10 / total
	}
	if step > t.lastStep && (step == 0 || time.Since(t.lastLine) >= time.Second) && done < total {
		t.lastStep, t.lastLine, t.shown = step, time.Now(), true
		t.println("%s: %d%%", t.name, step*10)
	}
}

// Close ends the report: the bar completes, or a last line says how long
// it took.
func (t *Task) Close() {
	t.mu.Lock()
	shown := t.shown
	t.mu.Unlock()
	if t.p == nil && shown {
		t.println("%s: done in %s", t.name, time.Since(t.start).Round(100*time.Millisecond))
	}
	t.finish()
}

// Steps reports a sequence of steps (the bench's runs): on a terminal a bar
// of steps done with the one running; elsewhere a line as each starts. It
// is safe for concurrent use.
type Steps struct {
	*bars
	start     time.Time
	total     int
	mu        sync.Mutex
	what      string
	nodes     string    // the running step's node counts, "" if none
	nodesLine time.Time // when the last plain node line was printed
}

// nodesEvery is how often a plain node line is printed at most.
const nodesEvery = 2 * time.Second

// NewSteps reports steps on w.
func NewSteps(w io.Writer, opts ...Option) *Steps {
	return &Steps{bars: newBars(w, opts), start: time.Now()}
}

// Start says step i (0-based) of total starts, doing what.
func (s *Steps) Start(i, total int, what string) {
	s.mu.Lock()
	s.what = what
	s.mu.Unlock()
	if s.p == nil {
		s.println("[%d/%d] %s %s", i+1, total, time.Since(s.start).Round(time.Second), what)
		return
	}
	s.total = total
	if s.bar == nil { // Start is called by one goroutine
		s.bar = s.p.New(int64(total), barStyle(),
			mpb.PrependDecorators(decor.CountersNoUnit("%d/%d ", decor.WCSyncSpace), decor.Elapsed(decor.ET_STYLE_GO)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.nodes != "" {
					return " " + s.what + " · " + s.nodes
				}
				return " " + s.what
			})))
	}
	s.mu.Lock()
	s.nodes = ""
	s.mu.Unlock()
	s.bar.SetCurrent(int64(i))
}

// Nodes says how the running step's simulated nodes stand: on a terminal
// after the step's name, elsewhere a line at most every two seconds and
// one when all are done.
func (s *Steps) Nodes(done, running, failed, total int) {
	line := fmt.Sprintf("nodes %d/%d done, %d running, %d failed", done, total, running, failed)
	s.mu.Lock()
	changed := s.nodes != line
	s.nodes = line
	due := time.Since(s.nodesLine) >= nodesEvery || done == total
	if s.p == nil && changed && due {
		s.nodesLine = time.Now()
	} else {
		due = false
	}
	s.mu.Unlock()
	if due {
		s.println("      %s %s", time.Since(s.start).Round(time.Second), line)
	}
}

// Note prints a line (above the bar on a terminal).
func (s *Steps) Note(msg string) { s.println("%s", msg) }

// Close completes the bar.
func (s *Steps) Close() {
	s.mu.Lock()
	s.what = "done"
	s.mu.Unlock()
	if s.bar != nil {
		s.bar.SetCurrent(int64(s.total))
	}
	s.finish()
}
