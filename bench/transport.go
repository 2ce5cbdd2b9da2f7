package bench

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
)

// countingTransport counts requests and the error answers a node sees,
// by kind.
type countingTransport struct {
	inner    http.RoundTripper
	plain    bool // the target speaks plain HTTP
	requests atomic.Int64
	errors   atomic.Int64
	mu       sync.Mutex
	byKind   map[string]int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(r)
	if err != nil && c.plain && r.URL.Scheme == "https" {
		return resp, err // ggcr's ping tries https first on an insecure registry
	}
	c.requests.Add(1)
	kind := ""
	switch {
	case err != nil:
		kind = errKind(err)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		kind = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	if kind != "" {
		c.errors.Add(1)
		c.mu.Lock()
		if c.byKind == nil {
			c.byKind = map[string]int64{}
		}
		c.byKind[kind]++
		c.mu.Unlock()
	}
	return resp, err
}

// kinds returns the transport's counts added to base's (a copy).
func (c *countingTransport) kinds(base map[string]int64) map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(base) == 0 && len(c.byKind) == 0 {
		return nil
	}
	out := make(map[string]int64, len(base)+len(c.byKind))
	for k, v := range base {
		out[k] += v
	}
	for k, v := range c.byKind {
		out[k] += v
	}
	return out
}

// httpsOnly sends requests to host over TLS: ggcr picks plain HTTP for
// loopback and private addresses (RFC 1918), where a registry with a
// certificate is as common as anywhere (a cluster's private endpoint).
type httpsOnly struct {
	inner http.RoundTripper
	host  string
}

func (h *httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && r.URL.Host == h.host {
		r = r.Clone(r.Context())
		r.URL.Scheme = "https"
	}
	return h.inner.RoundTrip(r)
}
