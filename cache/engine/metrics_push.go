package engine

import "github.com/prometheus/client_golang/prometheus"

// pushMetrics measure pushes and deletes.
type pushMetrics struct {
	uploads prometheus.Gauge
	expired prometheus.Counter
	pushed  *prometheus.CounterVec
	deleted *prometheus.CounterVec
}

func newPushMetrics(reg prometheus.Registerer) (*pushMetrics, error) {
	m := &pushMetrics{
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_push_upload_sessions", Help: "Blob upload sessions open now.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_push_upload_sessions_expired_total", Help: "Upload sessions discarded after staying idle past the upload timeout.",
		}),
		pushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_push_total", Help: "Content pushed, by kind (blob, manifest).",
		}, []string{"kind"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_push_deletes_total", Help: "Deletes of pushed content, by kind (blob, manifest, tag).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.uploads, m.expired, m.pushed, m.deleted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
