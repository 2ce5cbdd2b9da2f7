package registry

import (
	"context"
	"io"
	"net/http"
	"strconv"
)

// responseWriter records status and size for logs and metrics. It keeps
// io.ReaderFrom so a blob served from an *os.File still goes through the
// kernel's sendfile path.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

var (
	_ io.ReaderFrom = (*responseWriter)(nil)
	_ http.Flusher  = (*responseWriter)(nil)
)

func newResponseWriter(w http.ResponseWriter) *responseWriter {
	return &responseWriter{ResponseWriter: w}
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom hands src to the underlying writer's ReadFrom (sendfile when src
// is a file), counting what was sent.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// gateWriter passes a response body through but holds its final byte until
// wait reports the blob verified.
type gateWriter struct {
	http.ResponseWriter
	ctx       context.Context
	wait      func(context.Context) error
	remaining int64 // body bytes still to write; -1 until known
	started   bool
	done      bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if !g.started {
		g.started = true
		g.remaining = -1
		if n, err := strconv.ParseInt(g.Header().Get("Content-Length"), 10, 64); err == nil {
			g.remaining = n
		}
	}
	if g.remaining < 0 {
		// Length unknown: nothing may go out before verification.
		if err := g.wait(g.ctx); err != nil {
			return 0, err
		}
		return g.ResponseWriter.Write(p)
	}
	if int64(len(p)) < g.remaining {
		n, err := g.ResponseWriter.Write(p)
		g.remaining -= int64(n)
		return n, err
	}
	// p holds the final byte: send the rest, then wait for the verdict.
	p = p[:g.remaining]
	n, err := g.ResponseWriter.Write(p[:len(p)-1])
	g.remaining -= int64(n)
	if err != nil {
		return n, err
	}
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if err := g.wait(g.ctx); err != nil {
		return n, err
	}
	m, err := g.ResponseWriter.Write(p[len(p)-1:])
	g.remaining -= int64(m)
	g.done = g.remaining == 0
	return n + m, err
}

// short reports whether a body was started but not completed.
func (g *gateWriter) short() bool { return g.started && !g.done && g.remaining != 0 }
