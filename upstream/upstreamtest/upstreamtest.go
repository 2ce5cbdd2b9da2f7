// Package upstreamtest runs go-containerregistry's in-memory registry
// behind httptest as a test upstream, counting requests and injecting
// faults (status codes, delay, wrong bytes, cut bodies, unreachable).
package upstreamtest

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock/airlock/internal/ocierr"
	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Fault changes the answer to matching requests.
type Fault struct {
	// Method and PathContains select requests ("" matches any).
	Method       string
	PathContains string
	// Times limits the fault to the first N matching requests (0: always).
	Times int

	Status     int           // answer with this status and an error body
	RetryAfter int           // Retry-After seconds, with Status
	Delay      time.Duration // wait before answering
	CutAfter   int64         // send this many body bytes, then drop the connection (>0)
	Corrupt    bool          // flip a byte in the body, keeping headers
	Drop       bool          // drop the connection without an answer
	// PauseAfter sends this many body bytes (>0), then waits for Resume
	// to be closed before sending the rest.
	PauseAfter int64
	Resume     <-chan struct{}
	// IgnoreRange answers Range requests with the whole body (200).
	IgnoreRange bool
}

// Upstream is a test registry. It is safe for concurrent use.
type Upstream struct {
	Server *httptest.Server
	// Host is host:port of the server, for rules' upstream endpoints.
	Host string

	counter
	mu     sync.Mutex
	faults []*faultState
	sent   map[string]int64 // body bytes written, by "METHOD /path"
	// tagsPage > 0: tags/list answers pages of at most this many, with Link.
	tagsPage int
	inner    http.Handler
	pool     *http.Transport
}

type faultState struct {
	Fault
	used int
}

// New starts an upstream with referrers support; it is closed with t.
func New(t testing.TB) *Upstream {
	u := &Upstream{pool: &http.Transport{}, inner: registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0)))}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Server.Close)
	t.Cleanup(u.pool.CloseIdleConnections)
	pu, _ := url.Parse(u.Server.URL)
	u.Host = pu.Host
	return u
}

// URL is the server's base URL (http://host:port).
func (u *Upstream) URL() string { return u.Server.URL }

// Count returns how many requests had this method and a path containing
// part (e.g. "/blobs/sha256:..." or "/manifests/").
func (u *Upstream) Count(method, part string) int {
	return u.sum(func(k string) bool {
		m, p, _ := strings.Cut(k, " ")
		return (method == "" || m == method) && strings.Contains(p, part)
	})
}

// Total is the number of requests other than pings (GET /v2/).
func (u *Upstream) Total() int {
	return u.sum(func(k string) bool { return !strings.HasSuffix(k, " /v2/") })
}

// BytesSent is how many body bytes responses to requests with this method
// and a path containing part carried (e.g. "/blobs/sha256:...").
func (u *Upstream) BytesSent(method, part string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	var n int64
	for k, b := range u.sent {
		m, p, _ := strings.Cut(k, " ")
		if (method == "" || m == method) && strings.Contains(p, part) {
			n += b
		}
	}
	return n
}

// sentCounter adds the body bytes written to the Upstream's count.
type sentCounter struct {
	http.ResponseWriter
	u   *Upstream
	key string
}

func (s *sentCounter) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.u.mu.Lock()
	if s.u.sent == nil {
		s.u.sent = map[string]int64{}
	}
	s.u.sent[s.key] += int64(n)
	s.u.mu.Unlock()
	return n, err
}

// Flush passes a flush on (faults flush a partial body).
func (s *sentCounter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// AddFault installs a fault; later faults are checked after earlier ones.
func (u *Upstream) AddFault(f Fault) {
	u.mu.Lock()
	u.faults = append(u.faults, &faultState{Fault: f})
	u.mu.Unlock()
}

// PageTags makes tags/list answer at most n tags per response (and fewer
// when the client asks for fewer with n), with a relative Link to the
// next page, as registries that paginate do; 0 turns it off.
func (u *Upstream) PageTags(n int) {
	u.mu.Lock()
	u.tagsPage = n
	u.mu.Unlock()
}

// ClearFaults removes every fault.
func (u *Upstream) ClearFaults() {
	u.mu.Lock()
	u.faults = nil
	u.mu.Unlock()
}

// setupHeader marks the test's own requests (pushes), which are neither
// counted nor faulted.
const setupHeader = "X-Upstreamtest-Setup"

type setupTransport struct{ inner http.RoundTripper }

func (s setupTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(setupHeader, "1")
	return s.inner.RoundTrip(r)
}

// Setup is a remote option that marks requests as the test's own. It has
// its own connection pool: httptest servers closing elsewhere reset
// http.DefaultTransport's.
func (u *Upstream) Setup() remote.Option {
	return remote.WithTransport(setupTransport{u.pool})
}

// SetupClient is an HTTP client whose requests are the test's own.
func (u *Upstream) SetupClient() *http.Client {
	return &http.Client{Transport: setupTransport{u.pool}}
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(setupHeader) != "" {
		u.inner.ServeHTTP(w, r)
		return
	}
	key := r.Method + " " + r.URL.Path
	u.add(key)
	w = &sentCounter{ResponseWriter: w, u: u, key: key}
	u.mu.Lock()
	var f *Fault
	for _, fs := range u.faults {
		if (fs.Method == "" || fs.Method == r.Method) && strings.Contains(r.URL.Path, fs.PathContains) && (fs.Times == 0 || fs.used < fs.Times) {
			fs.used++
			c := fs.Fault
			f = &c
			break
		}
	}
	page := u.tagsPage
	u.mu.Unlock()
	if f == nil {
		if page > 0 && strings.HasSuffix(r.URL.Path, "/tags/list") {
			u.pagedTags(w, r, page)
			return
		}
		u.inner.ServeHTTP(w, r)
		return
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.Drop:
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(f.RetryAfter))
		}
		_ = ocierr.Write(w, r, f.Status, errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf("injected %d", f.Status)))
	case f.CutAfter > 0 || f.Corrupt || f.PauseAfter > 0 || f.IgnoreRange:
		if f.IgnoreRange {
			r = r.Clone(r.Context())
			r.Header.Del("Range")
		}
		rec := httptest.NewRecorder()
		u.inner.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		if f.Corrupt && len(body) > 0 {
			body[len(body)/2] ^= 0xff
		}
		w.WriteHeader(rec.Code)
		if f.PauseAfter > 0 && f.PauseAfter < int64(len(body)) {
			w.Write(body[:f.PauseAfter])
			w.(http.Flusher).Flush()
			select {
			case <-f.Resume:
			case <-r.Context().Done():
				return
			}
			body = body[f.PauseAfter:]
		}
		if f.CutAfter > 0 && f.CutAfter < int64(len(body)) {
			w.Write(body[:f.CutAfter])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Write(body)
	default:
		u.inner.ServeHTTP(w, r)
	}
}

// pagedTags answers a tags/list request with one page of the inner
// registry's whole listing, after last, and a Link when more follow.
func (u *Upstream) pagedTags(w http.ResponseWriter, r *http.Request, page int) {
	whole := r.Clone(r.Context())
	whole.URL.RawQuery = ""
	rec := httptest.NewRecorder()
	u.inner.ServeHTTP(rec, whole)
	var l struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &l) != nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("n")); err == nil && n > 0 && n < page {
		page = n
	}
	tags := l.Tags
	if last := q.Get("last"); last != "" {
		tags = tags[sort.SearchStrings(tags, last+"\x00"):]
	}
	if len(tags) > page {
		tags = tags[:page]
		next := url.Values{"last": {tags[len(tags)-1]}, "n": {strconv.Itoa(page)}}
		w.Header().Set("Link", "<"+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": l.Name, "tags": tags})
}

// Ref returns a name reference to repo:tag on this upstream.
func (u *Upstream) Ref(t testing.TB, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(u.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// PushImage pushes a random image with the given layers of size bytes each.
func (u *Upstream) PushImage(t testing.TB, repoTag string, size int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(u.Ref(t, repoTag), img, u.Setup()); err != nil {
		t.Fatal(err)
	}
	return img
}

// PushIndex pushes a multi-platform OCI index (linux/amd64, linux/arm64)
// of random images, and returns it.
func (u *Upstream) PushIndex(t testing.TB, repoTag string, size int64) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(size, 1)
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	if err := remote.WriteIndex(u.Ref(t, repoTag), idx, u.Setup()); err != nil {
		t.Fatal(err)
	}
	return idx
}

// Unreachable returns the address of a port nothing listens on.
func Unreachable(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
