// Package httprec wraps an http.ResponseWriter to record a response's status
// and body size for logs, metrics and stats, without losing the sendfile
// path or the way to the connection. The registry and the MAR emulator
// both count their answers with it.
package httprec

import (
	"io"
	"net/http"
)

// Recorder records the status and the body bytes of one response. It keeps
// io.ReaderFrom, so a blob served from an *os.File still goes through the
// kernel's sendfile, and Unwrap, so http.ResponseController reaches the
// connection. The zero value is not usable; call New.
type Recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

var (
	_ io.ReaderFrom = (*Recorder)(nil)
	_ http.Flusher  = (*Recorder)(nil)
)

// New wraps w.
func New(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w}
}

// Status is the status sent: the first one given to WriteHeader, or 200
// once a body byte went out without one; 0 while nothing was written.
func (r *Recorder) Status() int { return r.status }

// Bytes is the number of body bytes written so far.
func (r *Recorder) Bytes() int64 { return r.bytes }

// WriteHeader records the first status and passes code on.
func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write passes p on, counting what was written.
func (r *Recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom hands src to the underlying writer's ReadFrom (sendfile when src
// is a file), counting what was sent.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// Flush flushes the underlying writer, through any wrappers it unwraps to;
// a writer that cannot flush is left alone.
func (r *Recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
