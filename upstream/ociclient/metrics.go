package ociclient

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	roundTrips *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		roundTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_http_requests_total",
			Help: "HTTP round trips to upstream registries (including pings, tokens and retries), by host, method and status code (0: no response).",
		}, []string{"host", "method", "code"}),
	}
	if err := reg.Register(m.roundTrips); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		m.roundTrips = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return m, nil
}

// counting counts round trips; it is the innermost layer so that retries
// are counted one by one.
type counting struct {
	inner http.RoundTripper
	m     *metrics
	host  string
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(req)
	code := "0"
	if resp != nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	c.m.roundTrips.WithLabelValues(c.host, req.Method, code).Inc()
	return resp, err
}
