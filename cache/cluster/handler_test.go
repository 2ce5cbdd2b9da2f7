package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/ocierr"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// seen is what the registry behind the peer handler received.
type seen struct {
	Path, RawPath, RequestURI, AcceptEncoding string
	Peer                                      Peer
	FromPeer                                  bool
}

// fakeRegistry stands for the registry's OCI handler: it serves one blob
// (Range honoured) under any /v2/<repo>/blobs/ path but /v2/missing/...,
// and records each request.
type fakeRegistry struct {
	blob []byte
	mu   sync.Mutex
	reqs []seen
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := FromPeer(r.Context())
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{r.URL.Path, r.URL.RawPath, r.RequestURI, r.Header.Get("Accept-Encoding"), p, ok})
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/v2/missing/"):
		ocierr.Write(w, r, 0, errcode.ErrorCodeBlobUnknown.WithMessage("no such blob"))
	case strings.HasPrefix(r.URL.Path, "/v2/norange/"):
		w.Write(f.blob) // a peer that ignores Range
	default:
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.blob))
	}
}

func (f *fakeRegistry) last(t *testing.T) seen {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the registry got no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeRegistry) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// peerEnv is one replica's peer surface on 127.0.0.1, and a client of
// another replica (a) with the same key.
type peerEnv struct {
	addr   string
	inner  *fakeRegistry
	ready  atomic.Bool
	conns  atomic.Int64         // connections the server accepted
	reg    *prometheus.Registry // the server's
	client *Client
	creg   *prometheus.Registry // the client's
	downs  *downs
}

type downs struct {
	mu    sync.Mutex
	peers []string
}

func (d *downs) MarkDown(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peers = append(d.peers, p)
}

func (d *downs) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.peers...)
}

func newPeerEnv(t *testing.T) *peerEnv {
	t.Helper()
	e := &peerEnv{inner: &fakeRegistry{blob: []byte("0123456789abcdefghij")}, reg: prometheus.NewRegistry(), creg: prometheus.NewRegistry(), downs: &downs{}}
	e.ready.Store(true)
	srv := httptest.NewUnstartedServer(nil)
	e.addr = srv.Listener.Addr().String()
	h, err := PeerHandler(e.inner, mustCred(t, 1), e.addr, zaptest.NewLogger(t), e.reg, WithReady(e.ready.Load))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(PeerPrefix+"/", h)
	srv.Config.Handler = mux
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	e.client, err = NewClient(mustCred(t, 1), a, e.downs, e.creg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// ociError decodes an OCI error answer.
func ociError(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var env struct{ Errors []struct{ Code string } }
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("%s: not OCI error JSON: %v", resp.Status, err)
	}
	return env.Errors[0].Code
}

func TestPeerHandlerServesSignedRequests(t *testing.T) {
	t.Parallel()
	e := newPeerEnv(t)
	ctx := t.Context()
	resp, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/team/app/blobs/sha256:ab%3Acd?ns=docker.io", 0)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(e.inner.blob) {
		t.Fatalf("relay: %s %q", resp.Status, body)
	}
	got := e.inner.last(t)
	want := seen{
		Path: "/v2/team/app/blobs/sha256:ab:cd", RawPath: "/v2/team/app/blobs/sha256:ab%3Acd",
		RequestURI: "/v2/team/app/blobs/sha256:ab%3Acd?ns=docker.io", Peer: Peer{Addr: a, Hop: 1}, FromPeer: true,
	}
	if got != want {
		t.Fatalf("the registry saw\n%+v\nwant\n%+v", got, want)
	}

	// Ping: 200 naming the replica while ready, 503 otherwise.
	if err := e.client.Ping(ctx, e.addr); err != nil {
		t.Fatalf("ping: %v", err)
	}
	e.ready.Store(false)
	if err := e.client.Ping(ctx, e.addr); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("ping of a replica not ready: %v", err)
	}
	if e.inner.count() != 1 {
		t.Fatalf("the registry got %d requests, want 1 (pings are the handler's)", e.inner.count())
	}
}

func TestPeerHandlerRefuses(t *testing.T) {
	t.Parallel()
	e := newPeerEnv(t)
	base := "http://" + e.addr
	other := mustCred(t, 2)
	for _, tc := range []struct {
		name, method, path string
		sign               *Credential
		status             int
		code               string
	}{
		{"unsigned blob", http.MethodGet, "/_airlock/peer/v2/a/blobs/sha256:00", nil, 401, "UNAUTHORIZED"},
		{"unsigned ping", http.MethodGet, PingPath, nil, 401, "UNAUTHORIZED"},
		{"unsigned unknown", http.MethodGet, "/_airlock/peer/x", nil, 401, "UNAUTHORIZED"},
		{"other key", http.MethodGet, "/_airlock/peer/v2/a/blobs/sha256:00", other, 401, "UNAUTHORIZED"},
		{"signed push", http.MethodPut, "/_airlock/peer/v2/a/manifests/v1", mustCred(t, 1), 405, "UNSUPPORTED"},
		{"signed delete", http.MethodDelete, "/_airlock/peer/v2/a/blobs/sha256:00", mustCred(t, 1), 405, "UNSUPPORTED"},
		{"signed unknown", http.MethodGet, "/_airlock/peer/admin", mustCred(t, 1), 404, "UNSUPPORTED"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		if tc.sign != nil {
			tc.sign.Sign(req, a, 1)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.status)
		}
		if tc.status == 401 && resp.Header.Get("Www-Authenticate") == "" {
			t.Errorf("%s: 401 without a challenge", tc.name)
		}
		if code := ociError(t, resp); code != tc.code {
			t.Errorf("%s: code %s, want %s", tc.name, code, tc.code)
		}
	}
	// A signed request replayed to another path is refused too.
	req, _ := http.NewRequest(http.MethodGet, base+"/_airlock/peer/v2/a/blobs/sha256:00", nil)
	mustCred(t, 1).Sign(req, a, 1)
	req.URL.Path = "/_airlock/peer/v2/b/blobs/sha256:00"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("replayed to another path: %s", resp.Status)
	}
	if n := e.inner.count(); n != 0 {
		t.Fatalf("the registry served %d refused requests", n)
	}
	if got := promtest.Sum(t, e.reg, "airlock_cluster_peer_rejected_total", "reason", "unsigned"); got != 3 {
		t.Fatalf("rejected unsigned = %v, want 3", got)
	}
	if got := promtest.Sum(t, e.reg, "airlock_cluster_peer_rejected_total", "reason", "bad"); got != 2 {
		t.Fatalf("rejected bad = %v, want 2", got)
	}
}
