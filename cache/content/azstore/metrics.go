package azstore

import "github.com/prometheus/client_golang/prometheus"

// metrics are the spool's: its hit ratio is what keeps warm reads local.
type metrics struct {
	reg                     prometheus.Registerer // nil: not exported
	hits, misses, evictions prometheus.Counter
	spoolBytes              prometheus.Gauge
}

func (m *metrics) register() error {
	m.hits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airlock_spool_hits_total", Help: "Blob opens served from the local spool of the Azure content store.",
	})
	m.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airlock_spool_misses_total", Help: "Blob opens that downloaded the blob from Azure Blob Storage.",
	})
	m.evictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airlock_spool_evictions_total", Help: "Blobs removed from the local spool to make room.",
	})
	m.spoolBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "airlock_spool_bytes", Help: "Bytes held or reserved in the local spool.",
	})
	if m.reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.hits, m.misses, m.evictions, m.spoolBytes} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
