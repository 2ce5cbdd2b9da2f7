package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Timeouts of the peer client. There is no overall timeout: a relayed
// blob's body streams for as long as it takes.
const (
	DialTimeout           = 2 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
)

// ErrUnreachable means a peer could not be dialled (connection refused,
// dial timeout, no route); the peer was marked down.
var ErrUnreachable = errors.New("cluster: peer unreachable")

// ErrHopLimit means a relay would exceed MaxHops.
var ErrHopLimit = errors.New("cluster: relay hop limit reached")

// Reporter learns of peers found unreachable; *Membership is one.
type Reporter interface {
	MarkDown(peer string)
}

// Transport is the http.RoundTripper of requests to peers: it signs each
// request as sent by self, one hop further than the peer request its
// context serves (FromPeer; else hop 1), and reports a peer it cannot dial
// to the Reporter.
type Transport struct {
	base http.RoundTripper
	cred *Credential
	self string
	down Reporter
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip signs a copy of r and sends it. Errors wrap ErrHopLimit or
// ErrNoKey before anything is sent, or ErrUnreachable when the dial
// failed.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	hop := 1
	if p, ok := FromPeer(r.Context()); ok {
		hop = p.Hop + 1
	}
	if hop > MaxHops {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%w: %s %s would be hop %d", ErrHopLimit, r.Method, r.URL.Redacted(), hop)
	}
	r2 := r.Clone(r.Context())
	if err := t.cred.Sign(r2, t.self, hop); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("cluster: %s %s: %w", r.Method, r.URL.Redacted(), err)
	}
	resp, err := t.base.RoundTrip(r2)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			t.down.MarkDown(r.URL.Host)
			return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, r.URL.Host, err)
		}
		return nil, err
	}
	return resp, nil
}

// ClientOption tunes NewClient.
type ClientOption func(*clientOptions)

type clientOptions struct {
	tls  *tls.Config
	base http.RoundTripper
}

// WithTLS reaches peers over HTTPS with cfg (the replicas serve tls:).
func WithTLS(cfg *tls.Config) ClientOption { return func(o *clientOptions) { o.tls = cfg } }

// WithBaseTransport sends the signed requests through rt instead of the
// client's own pooled transport (e.g. to count them in a test).
func WithBaseTransport(rt http.RoundTripper) ClientOption {
	return func(o *clientOptions) { o.base = rt }
}

// Client makes requests to peers: pings and relays. It is safe for
// concurrent use and pools connections per peer.
type Client struct {
	hc      *http.Client
	pool    *http.Transport // nil with WithBaseTransport
	scheme  string
	self    string
	relayed prometheus.Counter
	header  atomic.Pointer[stamp] // set on every request (SetHeader)
}

// stamp is a header every request carries, its value read when the
// request is made.
type stamp struct {
	name  string
	value func() string
}

// SetHeader makes every request this client makes from now on carry the
// header name, with value() at the time (none when it is ""): how a
// replica tells its peers what it knows, e.g. the version of the state it
// serves.
func (c *Client) SetHeader(name string, value func() string) {
	c.header.Store(&stamp{name: name, value: value})
}

var _ Prober = (*Client)(nil)

// NewClient returns the client of replica self, signing with cred and
// reporting unreachable peers to down.
func NewClient(cred *Credential, self string, down Reporter, reg prometheus.Registerer, opts ...ClientOption) (*Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{
		scheme: "http",
		self:   self,
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cluster_relayed_bytes_total",
			Help: "Bytes of blobs and manifests this replica received from peers.",
		}),
	}
	if o.tls != nil {
		c.scheme = "https"
	}
	base := o.base
	if base == nil {
		c.pool = &http.Transport{
			Proxy:                 nil, // peers are never reached through a proxy
			DialContext:           (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       o.tls,
			TLSHandshakeTimeout:   DialTimeout,
			ResponseHeaderTimeout: ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true, // relay the stored bytes, Range offsets and all
		}
		base = c.pool
	}
	c.hc = &http.Client{
		Transport: &Transport{base: base, cred: cred, self: self, down: down},
		// A peer answers; it never redirects a relay elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := reg.Register(c.relayed); err != nil {
		return nil, fmt.Errorf("cluster: metrics: %w", err)
	}
	return c, nil
}

// CloseIdleConnections closes pooled connections that carry nothing.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Ping asks peer whether it is ready: nil for 200 from a replica naming
// itself peer, else an error saying what answered.
func (c *Client) Ping(ctx context.Context, peer string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+"://"+peer+PingPath, nil)
	if err != nil {
		return fmt.Errorf("cluster: ping %s: %w", peer, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cluster: ping %s: %w", peer, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fmt.Errorf("cluster: ping %s: %s: it refused our signature (another peer key, or clocks more than %s apart)", peer, resp.Status, MaxSkew)
	default:
		return fmt.Errorf("cluster: ping %s: %s", peer, resp.Status)
	}
	if got := resp.Header.Get(HeaderPeer); got != peer {
		return fmt.Errorf("cluster: ping %s: answered by a replica calling itself %q (its cluster.self must be the address peers use)", peer, got)
	}
	return nil
}

// NewRequest builds a request to peer's OCI API: path is the registry's
// own ("/v2/<repo>/blobs/<digest>", query allowed), method GET or HEAD.
// Send it with Do; add headers (Accept) first.
func (c *Client) NewRequest(ctx context.Context, peer, method, path string) (*http.Request, error) {
	if method != http.MethodGet && method != http.MethodHead {
		return nil, fmt.Errorf("cluster: relay %s: peers serve GET and HEAD only", method)
	}
	if !strings.HasPrefix(path, "/v2/") {
		return nil, fmt.Errorf("cluster: relay path %q: want /v2/...", path)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+peer+PeerPrefix+path, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster: relay to %s: %w", peer, err)
	}
	if h := c.header.Load(); h != nil {
		if v := h.value(); v != "" {
			req.Header.Set(h.name, v)
		}
	}
	return req, nil
}

// Do sends req (from NewRequest). A 2xx answer is returned with its body
// counted in airlock_cluster_relayed_bytes_total; any other answer is
// read, closed and returned as a *RelayError. Errors wrap ErrUnreachable
// when the peer could not be dialled (it is then marked down) and
// ErrHopLimit when the relay would loop.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cluster: relay %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, relayError(req.URL.Host, resp)
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: c.relayed}
	return resp, nil
}

// Relay asks peer for path (see NewRequest) from byte rangeStart on: 0
// asks for the whole (200), more asks for "Range: bytes=<rangeStart>-" and
// only a 206 starting there is accepted. The hop is one more than the
// peer request ctx serves. The caller closes the body; a body that breaks
// mid-way is the caller's to resume with a new Relay from the offset it
// reached, to whichever replica owns the key by then.
func (c *Client) Relay(ctx context.Context, peer, method, path string, rangeStart int64) (*http.Response, error) {
	if rangeStart < 0 {
		return nil, fmt.Errorf("cluster: relay from offset %d", rangeStart)
	}
	req, err := c.NewRequest(ctx, peer, method, path)
	if err != nil {
		return nil, err
	}
	ranged := rangeStart > 0 && method == http.MethodGet
	if ranged {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(rangeStart, 10)+"-")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if ranged {
		first, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if resp.StatusCode != http.StatusPartialContent || !ok || first != rangeStart {
			resp.Body.Close()
			return nil, fmt.Errorf("cluster: relay %s from %s: asked for bytes %d- and got %s (Content-Range %q)",
				path, peer, rangeStart, resp.Status, resp.Header.Get("Content-Range"))
		}
	}
	return resp, nil
}

// contentRangeStart parses the first byte of "bytes first-last/size".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}

// RelayError is a peer's non-2xx answer to a relay.
type RelayError struct {
	Peer   string
	Status int
	// Code and Message are the first OCI error of the body, if any
	// ("BLOB_UNKNOWN", "UNAVAILABLE", ...).
	Code, Message string
}

func (e *RelayError) Error() string {
	s := fmt.Sprintf("cluster: peer %s answered %d", e.Peer, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func relayError(peer string, resp *http.Response) error {
	e := &RelayError{Peer: peer, Status: resp.StatusCode}
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 16<<10)).Decode(&env) == nil && len(env.Errors) > 0 {
		e.Code, e.Message = env.Errors[0].Code, env.Errors[0].Message
	}
	return e
}

// countingBody adds what is read to a counter.
type countingBody struct {
	io.ReadCloser
	n prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(float64(n))
	return n, err
}
