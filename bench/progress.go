package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a bar on a terminal (one redrawn line) or prints one line
// per step elsewhere.
type progress struct {
	w     io.Writer
	tty   bool
	total int
	runs  int
	start time.Time
}

func newProgress(w io.Writer, tty bool, total, runs int) *progress {
	return &progress{w: w, tty: tty, total: total, runs: runs, start: time.Now()}
}

const barWidth = 30

func (p *progress) line(done int, what string) string {
	filled := 0
	if p.total > 0 {
		filled = done * barWidth / p.total
	}
	return fmt.Sprintf("[%s%s] %3d/%d %6s  %s", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled),
		done, p.total, time.Since(p.start).Round(time.Second), what)
}

// show announces step i (0-based) as starting.
func (p *progress) show(i int, st step) {
	if p.w == nil {
		return
	}
	what := fmt.Sprintf("%-13s %-12s run %d/%d", st.scenario, st.target, st.run, p.runs)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(i, what))
		return
	}
	fmt.Fprintln(p.w, p.line(i, what))
}

// finish completes the bar.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(p.total, "done"))
		return
	}
	fmt.Fprintln(p.w, p.line(p.total, "done"))
}
