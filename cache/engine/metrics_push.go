package engine

import (
	"github.com/airlock/airlock/cache/upload"
	"github.com/prometheus/client_golang/prometheus"
)

// pushMetrics measure pushes and deletes.
type pushMetrics struct {
	pushed  *prometheus.CounterVec
	deleted *prometheus.CounterVec
}

// newPushMetrics registers the push metrics; the session counts are read
// from the session store's Stats when scraped.
func newPushMetrics(reg prometheus.Registerer, stats func() upload.Stats) (*pushMetrics, error) {
	m := &pushMetrics{
		pushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_push_total", Help: "Content pushed, by kind (blob, manifest).",
		}, []string{"kind"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_push_deletes_total", Help: "Deletes of pushed content, by kind (blob, manifest, tag).",
		}, []string{"kind"}),
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "airlock_push_upload_sessions",
		Help: "Blob upload sessions open now (with a shared session store: in the whole cluster, as this replica last listed them).",
	}, func() float64 { return float64(stats().Open) })
	expired := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "airlock_push_upload_sessions_expired_total",
		Help: "Upload sessions this replica discarded after they stayed idle past the upload timeout.",
	}, func() float64 { return float64(stats().Expired) })
	for _, c := range []prometheus.Collector{open, expired, m.pushed, m.deleted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// uploadStats are the session store's counts; none without a store.
func (e *Engine) uploadStats() upload.Stats {
	if s := e.uploads.store; s != nil {
		return s.Stats()
	}
	return upload.Stats{}
}
