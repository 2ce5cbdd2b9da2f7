package fault

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/airlock/airlock/internal/sleep"
)

// Sleep waits d or until ctx is done; it returns the context's error in the
// latter case. With d <= 0 it returns nil at once, even if ctx is done: a
// request without a delay goes on.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	return sleep.For(ctx, d)
}

// Drop closes the request's connection without writing a response, with a
// TCP reset where possible, so the client sees "connection reset by peer".
// It does not return normally when hijacking is impossible: it panics with
// http.ErrAbortHandler, which also closes the connection.
func Drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// corruptEvery is the stride of corrupted bytes: body offsets 0, 64 KiB,
// 128 KiB... are XORed with 0xFF.
const corruptEvery = 64 << 10

// ErrAborted is returned by a throttled Write when done is closed.
var ErrAborted = errors.New("response aborted")

// BodyWriter applies body effects (bandwidth, cut, corrupt) to w. It
// deliberately does not implement io.ReaderFrom so every byte goes through
// Write. A cut writes the first Cut bytes, flushes them, and panics with
// http.ErrAbortHandler: the server closes the connection mid-body. A
// throttled Write stops with ErrAborted when done (the request context's
// Done channel) is closed.
func (e Effects) BodyWriter(w http.ResponseWriter, done <-chan struct{}) http.ResponseWriter {
	if !e.Body() {
		return w
	}
	return &bodyWriter{ResponseWriter: w, rc: http.NewResponseController(w), e: e, done: done}
}

type bodyWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	e       Effects
	done    <-chan struct{}
	start   time.Time
	written int64
}

func (b *bodyWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

func (b *bodyWriter) Flush() { _ = b.rc.Flush() }

func (b *bodyWriter) Write(p []byte) (int, error) {
	if b.start.IsZero() {
		b.start = time.Now()
	}
	cut := false
	if b.e.Cut >= 0 && b.written+int64(len(p)) > b.e.Cut {
		p, cut = p[:b.e.Cut-b.written], true
	}
	if b.e.Corrupt {
		q := append([]byte(nil), p...)
		for off := (corruptEvery - b.written%corruptEvery) % corruptEvery; off < int64(len(q)); off += corruptEvery {
			q[off] ^= 0xFF
		}
		p = q
	}
	total := 0
	for len(p) > 0 {
		chunk := p
		if b.e.Bandwidth > 0 {
			chunk = p[:min(int64(len(p)), max(b.e.Bandwidth/20, 1), 64<<10)]
		}
		n, err := b.ResponseWriter.Write(chunk)
		total += n
		b.written += int64(n)
		p = p[n:]
		if err != nil {
			return total, err
		}
		if b.e.Bandwidth > 0 {
			_ = b.rc.Flush()
			due := b.start.Add(time.Duration(float64(b.written) / float64(b.e.Bandwidth) * float64(time.Second)))
			t := time.NewTimer(time.Until(due))
			select {
			case <-t.C:
			case <-b.done:
				t.Stop()
				return total, ErrAborted
			}
		}
	}
	if cut {
		_ = b.rc.Flush()
		panic(http.ErrAbortHandler)
	}
	return total, nil
}
