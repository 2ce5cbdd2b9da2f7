package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// On a terminal the bar is redrawn in place and failures are printed on
// their own line; otherwise each image gets one plain line.
func TestProgressOutput(t *testing.T) {
	t.Parallel()
	var tty bytes.Buffer
	p := &Progress{w: &tty, tty: true, verb: "warm", stop: make(chan struct{})}
	p.images.Store(2)
	p.Expect(2 << 20)
	p.Write(make([]byte, 1<<20))
	p.Finished("a:1", nil, "")
	p.Finished("b:1", errors.New("boom"), "")
	p.Close()
	out := tty.String()
	for _, want := range []string{"\r\x1b[KFAIL b:1: boom\n", "\r\x1b[Kwarm [===============>              ]  50%  2/2 images  1.0 MiB/2.0 MiB", "1 failed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	var plain bytes.Buffer
	p = New(&plain, "warm", 1)
	p.Finished("a:1", nil, "sha256:x 1 blobs 10 B")
	p.Close()
	if plain.String() != "ok   a:1 sha256:x 1 blobs 10 B\n" {
		t.Errorf("plain output %q", plain.String())
	}
}
