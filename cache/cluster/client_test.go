package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/internal/promtest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func TestRelayRangeAndPooling(t *testing.T) {
	t.Parallel()
	e := newPeerEnv(t)
	ctx := t.Context()
	const path = "/v2/team/app/blobs/sha256:00"
	total := 0
	for _, start := range []int64{0, 5, 19, 7} {
		resp, err := e.client.Relay(ctx, e.addr, http.MethodGet, path, start)
		if err != nil {
			t.Fatalf("from %d: %v", start, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != string(e.inner.blob[start:]) {
			t.Fatalf("from %d: %q %v", start, body, err)
		}
		total += len(body)
		// Stored bytes are relayed as stored: no Accept-Encoding added.
		if got := e.inner.last(t); got.AcceptEncoding != "" {
			t.Fatalf("relay asked for Accept-Encoding %q", got.AcceptEncoding)
		}
	}
	if got := promtest.Sum(t, e.creg, "airlock_cluster_relayed_bytes_total"); got != float64(total) {
		t.Fatalf("relayed bytes %v, want %d", got, total)
	}
	// HEAD carries no Range and no body.
	resp, err := e.client.Relay(ctx, e.addr, http.MethodHead, path, 9)
	if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(e.inner.blob)) {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := e.client.Ping(ctx, e.addr); err != nil {
		t.Fatal(err)
	}
	if n := e.conns.Load(); n != 1 {
		t.Fatalf("6 requests in a row opened %d connections, want 1 (keep-alive)", n)
	}
}

func TestRelayErrors(t *testing.T) {
	t.Parallel()
	e := newPeerEnv(t)
	ctx := t.Context()

	_, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/missing/blobs/sha256:00", 0)
	var re *RelayError
	if !errors.As(err, &re) || re.Status != http.StatusNotFound || re.Code != "BLOB_UNKNOWN" || re.Peer != e.addr {
		t.Fatalf("missing blob: %v", err)
	}
	// A peer that answers 200 to a Range request would shift every byte.
	if _, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/norange/blobs/sha256:00", 3); err == nil || !strings.Contains(err.Error(), "asked for bytes 3-") {
		t.Fatalf("ignored Range: %v", err)
	}
	if _, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/a/blobs/sha256:00", 100); !errors.As(err, &re) || re.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("Range past the end: %v", err)
	}
	for _, bad := range []struct{ method, path string }{
		{http.MethodPost, "/v2/a/blobs/uploads/"},
		{http.MethodGet, "/admin"},
		{http.MethodGet, "v2/a"},
	} {
		if _, err := e.client.Relay(ctx, e.addr, bad.method, bad.path, 0); err == nil {
			t.Errorf("%s %s accepted", bad.method, bad.path)
		}
	}
	if _, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/a/blobs/sha256:00", -1); err == nil {
		t.Error("negative offset accepted")
	}
	if len(e.downs.list()) != 0 {
		t.Fatalf("answers marked a peer down: %v", e.downs.list())
	}
}

// The hop is one more than the peer request the context serves; past
// MaxHops nothing is sent.
func TestRelayHops(t *testing.T) {
	t.Parallel()
	e := newPeerEnv(t)
	for hop := 1; hop < MaxHops; hop++ {
		ctx := WithPeer(t.Context(), Peer{Addr: b, Hop: hop})
		resp, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/a/blobs/sha256:00", 0)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := e.inner.last(t).Peer; got != (Peer{Addr: a, Hop: hop + 1}) {
			t.Fatalf("relay under hop %d arrived as %+v", hop, got)
		}
	}
	n := e.inner.count()
	ctx := WithPeer(t.Context(), Peer{Addr: b, Hop: MaxHops})
	if _, err := e.client.Relay(ctx, e.addr, http.MethodGet, "/v2/a/blobs/sha256:00", 0); !errors.Is(err, ErrHopLimit) {
		t.Fatalf("relay past the hop limit: %v", err)
	}
	if e.inner.count() != n {
		t.Fatal("a relay past the hop limit was sent")
	}
}

// A peer that refuses connections is reported down at once.
func TestRelayRefusedMarksDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	d := &downs{}
	c := newClient(t, 1, a, d)
	if _, err := c.Relay(t.Context(), gone, http.MethodGet, "/v2/a/blobs/sha256:00", 0); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("relay to a closed port: %v", err)
	}
	if err := c.Ping(t.Context(), gone); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("ping of a closed port: %v", err)
	}
	if got := d.list(); !slices.Equal(got, []string{gone, gone}) {
		t.Fatalf("marked down %v, want %s twice", got, gone)
	}
}

// A ping answered by a replica under another name fails: the names peers
// use must be the ones replicas call themselves, or views disagree.
func TestPingChecksName(t *testing.T) {
	t.Parallel()
	h, err := PeerHandler(http.NotFoundHandler(), mustCred(t, 1), "10.0.0.99:5000", zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := newClient(t, 1, a, &downs{})
	if err := c.Ping(t.Context(), srv.Listener.Addr().String()); err == nil || !strings.Contains(err.Error(), "10.0.0.99:5000") {
		t.Fatalf("ping of a misnamed replica: %v", err)
	}
	// A replica with another key refuses the probe: it is not a peer.
	stranger := newClient(t, 2, a, &downs{})
	if err := stranger.Ping(t.Context(), srv.Listener.Addr().String()); err == nil || !strings.Contains(err.Error(), "another peer key") {
		t.Fatalf("ping with another key: %v", err)
	}
}

func TestClientTimeouts(t *testing.T) {
	t.Parallel()
	c := newClient(t, 1, a, &downs{})
	if c.hc.Timeout != 0 || c.pool.ResponseHeaderTimeout != ResponseHeaderTimeout || !c.pool.DisableCompression || c.pool.Proxy != nil {
		t.Fatalf("client %+v, pool %+v", c.hc, c.pool)
	}
}

// SetHeader stamps every request the client makes from then on with the
// value at that time; an empty value sends no header.
func TestClientSetHeader(t *testing.T) {
	t.Parallel()
	c := newClient(t, 1, "127.0.0.1:1", &downs{})
	sent := func() []string {
		req, err := c.NewRequest(context.Background(), "127.0.0.1:2", "GET", "/v2/r/blobs/x")
		if err != nil {
			t.Fatal(err)
		}
		return req.Header.Values("X-Version")
	}
	if h := sent(); len(h) != 0 {
		t.Fatalf("before SetHeader: %q", h)
	}
	v := "v1"
	c.SetHeader("X-Version", func() string { return v })
	if h := sent(); len(h) != 1 || h[0] != "v1" {
		t.Fatalf("got %q, want [v1]", h)
	}
	v = "v2"
	if h := sent(); len(h) != 1 || h[0] != "v2" {
		t.Fatalf("got %q, want the value at the time [v2]", h)
	}
	v = ""
	if h := sent(); len(h) != 0 {
		t.Fatalf("an empty value was sent: %q", h)
	}
}

// newClient is a peer client with key b calling itself self, reporting
// to downs; its idle connections close when the test ends.
func newClient(t *testing.T, b byte, self string, downs Reporter) *Client {
	t.Helper()
	c, err := NewClient(mustCred(t, b), self, downs, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}
