package ociclient

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
)

// endpointMap validates endpoints and indexes them by host.
func endpointMap(endpoints []Endpoint) (map[string]Endpoint, error) {
	out := make(map[string]Endpoint, len(endpoints))
	for _, ep := range endpoints {
		if ep.URL == "" {
			ep.URL = "https://" + ep.Host
		}
		u, err := url.Parse(ep.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("upstream %s: endpoint %q must be http(s)://host[:port]", ep.Host, ep.URL)
		}
		ep.URL = u.Scheme + "://" + u.Host
		out[ep.Host] = ep
	}
	return out, nil
}

// baseKey names the pooled transport of an endpoint: its URL and TLS mode.
func baseKey(ep Endpoint) string { return ep.URL + " insecure=" + strconv.FormatBool(ep.Insecure) }

// SetEndpoints replaces the endpoint overrides (configuration reload).
// Requests already running finish on the endpoints they started with; the
// next ones use the new endpoints, with new tokens.
func (c *Client) SetEndpoints(endpoints []Endpoint) error {
	eps, err := endpointMap(endpoints)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if maps.Equal(*c.endpoints.Load(), eps) {
		return nil
	}
	c.endpoints.Store(&eps)
	// Authenticated transports were set up against the old endpoints.
	c.clients = map[string]*http.Client{}
	return nil
}
