// Package progress reports long work of the command line: on a terminal a
// bar redrawn in place, otherwise plain lines.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress reports a long run over many images: on a terminal a bar
// redrawn in place; otherwise one line per image as it finishes.
type Progress struct {
	w     io.Writer
	tty   bool
	verb  string
	start time.Time

	images, done, failed atomic.Int64
	total, bytes         atomic.Int64

	mu   sync.Mutex // serializes output
	stop chan struct{}
	wg   sync.WaitGroup
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// New reports on w a run that verb (warm, export) does to images.
func New(w io.Writer, verb string, images int) *Progress {
	p := &Progress{w: w, tty: isTerminal(w), verb: verb, start: time.Now(), stop: make(chan struct{})}
	p.images.Store(int64(images))
	if p.tty {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.draw()
				}
			}
		}()
	}
	return p
}

// Bytes is the count of bytes received.
func (p *Progress) Bytes() int64 { return p.bytes.Load() }

// Write counts bytes received (progress is an io.Writer sink).
func (p *Progress) Write(b []byte) (int, error) {
	p.bytes.Add(int64(len(b)))
	return len(b), nil
}

// Expect adds bytes to the total once an image's size is known.
func (p *Progress) Expect(n int64) { p.total.Add(n) }

// Finished records an image's outcome.
func (p *Progress) Finished(ref string, err error, detail string) {
	p.done.Add(1)
	if err != nil {
		p.failed.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.tty && err != nil:
		fmt.Fprintf(p.w, "\r\x1b[KFAIL %s: %v\n", ref, err)
	case p.tty:
	case err != nil:
		fmt.Fprintf(p.w, "FAIL %s: %v\n", ref, err)
	default:
		fmt.Fprintf(p.w, "ok   %s %s\n", ref, detail)
	}
}

func (p *Progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	const width = 30
	total, got := p.total.Load(), p.bytes.Load()
	frac := 0.0
	if total > 0 {
		frac = min(float64(got)/float64(total), 1)
	}
	bar := strings.Repeat("=", int(frac*width))
	if len(bar) < width {
		bar += ">" + strings.Repeat(" ", width-len(bar)-1)
	}
	el := time.Since(p.start).Seconds()
	line := fmt.Sprintf("%s [%s] %3.0f%%  %d/%d images  %s/%s  %s/s", p.verb, bar, frac*100,
		p.done.Load(), p.images.Load(), Human(got), Human(total), Human(int64(float64(got)/max(el, 0.001))))
	if f := p.failed.Load(); f > 0 {
		line += fmt.Sprintf("  %d failed", f)
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
}

// Close stops the bar.
func (p *Progress) Close() {
	if p.tty {
		close(p.stop)
		p.wg.Wait()
		p.draw()
		fmt.Fprintln(p.w)
	}
}

// Human formats a byte count.
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), "KMGTPE"
	i := -1
	for v >= unit && i < len(u)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, u[i])
}
