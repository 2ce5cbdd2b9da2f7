package httprec

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readerFromWriter is a ResponseWriter whose ReadFrom must be used (the
// sendfile path) rather than a copy loop through Write.
type readerFromWriter struct {
	*httptest.ResponseRecorder
	readFrom int
}

func (w *readerFromWriter) ReadFrom(src io.Reader) (int64, error) {
	w.readFrom++
	return io.Copy(struct{ io.Writer }{w.ResponseRecorder}, src)
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		do         func(r *Recorder)
		wantStatus int
		wantBytes  int64
		wantBody   string
	}{
		{"nothing written", func(*Recorder) {}, 0, 0, ""},
		{"header only", func(r *Recorder) { r.WriteHeader(http.StatusNotFound) }, http.StatusNotFound, 0, ""},
		{"first header wins", func(r *Recorder) {
			r.WriteHeader(http.StatusAccepted)
			r.WriteHeader(http.StatusTeapot)
		}, http.StatusAccepted, 0, ""},
		{"body without header", func(r *Recorder) {
			_, _ = r.Write([]byte("abc"))
			_, _ = r.Write([]byte("de"))
		}, http.StatusOK, 5, "abcde"},
		{"read from", func(r *Recorder) {
			r.WriteHeader(http.StatusPartialContent)
			_, _ = r.ReadFrom(strings.NewReader("0123456789"))
		}, http.StatusPartialContent, 10, "0123456789"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			under := &readerFromWriter{ResponseRecorder: httptest.NewRecorder()}
			r := New(under)
			c.do(r)
			if r.Status() != c.wantStatus || r.Bytes() != c.wantBytes {
				t.Errorf("status %d bytes %d, want %d and %d", r.Status(), r.Bytes(), c.wantStatus, c.wantBytes)
			}
			if got := under.Body.String(); got != c.wantBody {
				t.Errorf("body %q, want %q", got, c.wantBody)
			}
		})
	}
}

func TestRecorderKeepsReadFrom(t *testing.T) {
	t.Parallel()
	under := &readerFromWriter{ResponseRecorder: httptest.NewRecorder()}
	r := New(under)
	if _, err := io.Copy(r, struct{ io.Reader }{strings.NewReader("blob")}); err != nil {
		t.Fatal(err)
	}
	if under.readFrom != 1 {
		t.Errorf("underlying ReadFrom called %d times, want 1 (sendfile path lost)", under.readFrom)
	}
	if r.Bytes() != 4 {
		t.Errorf("bytes %d, want 4", r.Bytes())
	}
}

func TestRecorderReadFromWithoutReaderFrom(t *testing.T) {
	t.Parallel()
	under := httptest.NewRecorder()
	r := New(under)
	n, err := r.ReadFrom(strings.NewReader("plain"))
	if err != nil || n != 5 || under.Body.String() != "plain" || r.Bytes() != 5 {
		t.Errorf("ReadFrom = %d, %v; body %q, bytes %d", n, err, under.Body.String(), r.Bytes())
	}
}

func TestRecorderFlushAndUnwrap(t *testing.T) {
	t.Parallel()
	under := httptest.NewRecorder()
	r := New(under)
	if err := http.NewResponseController(r).Flush(); err != nil {
		t.Fatalf("flush through the recorder: %v", err)
	}
	if !under.Flushed {
		t.Error("underlying writer not flushed")
	}
	if r.Unwrap() != http.ResponseWriter(under) {
		t.Error("Unwrap does not return the wrapped writer")
	}
}
