package engine

import (
	"github.com/airlock/airlock/cache/upload"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	hits, misses, coalesced *prometheus.CounterVec
	stale                   *prometheus.CounterVec
	upRequests, upBytes     *prometheus.CounterVec
	fillTTFB                *prometheus.HistogramVec
	fillsInFlight           prometheus.Gauge
	fillFailures            *prometheus.CounterVec
	uncached, uncachedBytes *prometheus.CounterVec
	push                    *pushMetrics
}

func newMetrics(reg prometheus.Registerer, uploads func() upload.Stats) (*metrics, error) {
	m := &metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_hits_total", Help: "Requests answered from the local store, by rule and kind (manifest, blob).",
		}, []string{"rule", "kind"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_misses_total", Help: "Requests that started an upstream fetch, by rule and kind.",
		}, []string{"rule", "kind"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_coalesced_total", Help: "Requests that joined an upstream fetch already running, by rule and kind.",
		}, []string{"rule", "kind"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cache_stale_serves_total", Help: "Stale tags served because the upstream could not be reached or failed, by rule.",
		}, []string{"rule"}),
		upRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_requests_total", Help: "Upstream requests made by the cache, by rule, kind and method.",
		}, []string{"rule", "kind", "method"}),
		upBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_upstream_bytes_total", Help: "Bytes received from upstreams, by rule.",
		}, []string{"rule"}),
		fillTTFB: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_fill_ttfb_seconds", Help: "Time from the start of a blob fill to its first byte from the upstream, by rule.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"rule"}),
		fillsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_fills_in_flight", Help: "Blob fills running now.",
		}),
		fillFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_fill_failures_total", Help: "Blob fills that failed (upstream error, digest mismatch, timeout), by rule.",
		}, []string{"rule"}),
		uncached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_fill_uncached_total", Help: "Objects served from the upstream without being kept, because the storage quota had no room for them (pins and pushed content fill it), by rule and kind.",
		}, []string{"rule", "kind"}),
		uncachedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_fill_uncached_bytes_total", Help: "Bytes of the blobs served without being kept (airlock_fill_uncached_total), by rule.",
		}, []string{"rule"}),
	}
	for _, c := range []prometheus.Collector{m.hits, m.misses, m.coalesced, m.stale, m.upRequests, m.upBytes, m.fillTTFB, m.fillsInFlight, m.fillFailures, m.uncached, m.uncachedBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	var err error
	m.push, err = newPushMetrics(reg, uploads)
	return m, err
}

func (m *metrics) upstream(rule, kind, method string) {
	m.upRequests.WithLabelValues(rule, kind, method).Inc()
}
