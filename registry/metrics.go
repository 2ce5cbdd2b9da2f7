package registry

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/internal/httprec"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	sent     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_http_request_duration_seconds", Help: "HTTP request latency (to the end of the body) by route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"route", "method"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_http_response_bytes_total", Help: "Response body bytes sent, by route pattern.",
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.sent} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (reg *Registry) observe(r *http.Request, rw *httprec.Recorder, route string, start time.Time) {
	took := reg.now().Sub(start)
	code := rw.Status()
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	method := r.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	reg.m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	reg.m.latency.WithLabelValues(route, method).Observe(took.Seconds())
	reg.m.sent.WithLabelValues(route).Add(float64(rw.Bytes()))
	ce := reg.log.Check(zap.InfoLevel, "request")
	if ce == nil {
		return // below the log level: build no fields
	}
	ce.Write(
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.String("ns", r.URL.Query().Get("ns")),
		zap.String("route", route),
		zap.Int("status", code),
		zap.Int64("bytes", rw.Bytes()),
		zap.Duration("took", took),
		zap.String("remote", r.RemoteAddr),
		zap.String("ua", r.UserAgent()),
	)
}
