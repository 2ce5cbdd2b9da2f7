// Package ociclient implements upstream.Client over HTTP with
// go-containerregistry's transports: the anonymous or basic token flow, a
// keep-alive pool per upstream endpoint, retries with backoff on temporary
// errors, and redirects followed (MAR sends blob GETs to a CDN host).
package ociclient

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/internal/flight"
	"github.com/airlock/airlock/upstream"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Endpoint overrides where a registry host is reached.
type Endpoint struct {
	// Host is the registry host as rules name it, e.g. mcr.microsoft.com.
	Host string
	// URL is scheme://host[:port] to connect to; default https://<Host>.
	URL string
	// Insecure skips TLS certificate verification for this host.
	Insecure bool
}

// Option configures a Client.
type Option func(*Client)

// WithBackoff sets the retry backoff for temporary errors.
func WithBackoff(b transport.Backoff) Option { return func(c *Client) { c.backoff = b } }

// WithUserAgent sets the User-Agent prefix.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithResponseHeaderTimeout bounds the wait for response headers.
func WithResponseHeaderTimeout(d time.Duration) Option {
	return func(c *Client) { c.headerTimeout = d }
}

// WithMaxManifestSize bounds manifest and referrers bodies.
func WithMaxManifestSize(n int64) Option { return func(c *Client) { c.maxManifest = n } }

// Client is an upstream.Client. It is safe for concurrent use.
type Client struct {
	log           *zap.Logger
	metrics       *metrics
	backoff       transport.Backoff
	userAgent     string
	headerTimeout time.Duration
	maxManifest   int64

	endpoints atomic.Pointer[map[string]Endpoint] // replaced whole by SetEndpoints

	mu      sync.Mutex
	bases   map[string]http.RoundTripper // per endpoint URL
	clients map[string]*http.Client      // authenticated, per host, repository and credentials
	logins  flight.Shared[string, *http.Client]
}

var _ upstream.Client = (*Client)(nil)

// DefaultMaxManifestSize is the largest manifest accepted from upstream.
const DefaultMaxManifestSize = 4 << 20

// New returns a client. Hosts without an endpoint are reached at https://host.
func New(endpoints []Endpoint, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Client, error) {
	c := &Client{
		log:           log,
		backoff:       transport.Backoff{Duration: 100 * time.Millisecond, Factor: 3, Jitter: 0.1, Steps: 3},
		userAgent:     "airlock",
		headerTimeout: 60 * time.Second,
		maxManifest:   DefaultMaxManifestSize,
		bases:         map[string]http.RoundTripper{},
		clients:       map[string]*http.Client{},
	}
	for _, o := range opts {
		o(c)
	}
	eps, err := endpointMap(endpoints)
	if err != nil {
		return nil, err
	}
	c.endpoints.Store(&eps)
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	return c, nil
}

func (c *Client) endpoint(host string) Endpoint {
	if ep, ok := (*c.endpoints.Load())[host]; ok {
		return ep
	}
	return Endpoint{Host: host, URL: "https://" + host}
}

// base returns the shared pooled transport for an endpoint.
func (c *Client) base(ep Endpoint) http.RoundTripper {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt, ok := c.bases[baseKey(ep)]; ok {
		return rt
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: c.headerTimeout,
		// Blobs must arrive as stored: never let net/http gunzip them.
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: ep.Insecure, MinVersion: tls.VersionTLS12}, //nolint:gosec // per-host opt-in
	}
	var rt http.RoundTripper = &counting{inner: t, m: c.metrics, host: ep.Host}
	rt = transport.NewRetry(rt,
		transport.WithRetryBackoff(c.backoff),
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	rt = transport.NewUserAgent(rt, c.userAgent)
	c.bases[baseKey(ep)] = rt
	return rt
}

func credKey(r upstream.Repo) string {
	h := sha256.Sum256([]byte(r.Auth.Username + "\x00" + r.Auth.Password))
	return r.Host + "\x00" + r.Name + "\x00" + hex.EncodeToString(h[:8])
}

// httpClient returns the authenticated client for r, pinging the registry
// and fetching a token the first time (once however many ask at once). A
// failed login is not kept: a later request tries again.
func (c *Client) httpClient(ctx context.Context, r upstream.Repo) (*http.Client, Endpoint, error) {
	ep := c.endpoint(r.Host)
	k := baseKey(ep) + "\x00" + credKey(r)
	if hc := c.client(k); hc != nil {
		return hc, ep, nil
	}
	hc, _, err := c.logins.Do(ctx, k, func() (*http.Client, error) {
		if hc := c.client(k); hc != nil {
			return hc, nil // a login that ended just before this one began
		}
		hc, err := c.newScoped(ctx, ep, r)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.clients[k] = hc
		c.mu.Unlock()
		return hc, nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, ep, c.wrapErr(r, 0, ctx.Err())
	}
	return hc, ep, err
}

func (c *Client) client(k string) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clients[k]
}

func (c *Client) newScoped(ctx context.Context, ep Endpoint, r upstream.Repo) (*http.Client, error) {
	u, _ := url.Parse(ep.URL)
	var nopts []name.Option
	if u.Scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nopts...)
	if err != nil {
		return nil, c.wrapErr(r, 0, err)
	}
	var auth authn.Authenticator = authn.Anonymous
	if r.Auth.Username != "" {
		auth = &authn.Basic{Username: r.Auth.Username, Password: r.Auth.Password}
	}
	scope := "repository:" + r.Name + ":pull"
	// The token flow must not be tied to the first caller's cancellation.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.headerTimeout)
	defer cancel()
	rt, err := transport.NewWithContext(pctx, reg, auth, c.base(ep), []string{scope})
	if err != nil {
		return nil, c.classify(r, err)
	}
	return &http.Client{Transport: rt}, nil
}

// classify turns a transport or HTTP error into an *upstream.Error.
func (c *Client) classify(r upstream.Repo, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		return c.wrapErr(r, te.StatusCode, err)
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return err
	}
	return c.wrapErr(r, 0, err)
}

func (c *Client) wrapErr(r upstream.Repo, status int, err error) error {
	return &upstream.Error{Repo: r.String(), StatusCode: status, Err: err}
}

// statusErr reads an error response into an *upstream.Error.
func (c *Client) statusErr(r upstream.Repo, resp *http.Response) error {
	err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)
	if err == nil {
		err = fmt.Errorf("unexpected status %d", resp.StatusCode)
	}
	ue := &upstream.Error{Repo: r.String(), StatusCode: resp.StatusCode, Err: err}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		ue.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	}
	return ue
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var secs int
	if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &secs); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
