package azmeta

import (
	"errors"

	"github.com/airlock/airlock/storage/azure"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics say how much the index asks of Azure and how much its read
// cache spares it.
type metrics struct {
	requests         *prometheus.CounterVec // op, result
	hits, misses     *prometheus.CounterVec // kind
	gateWaits, races prometheus.Counter
	// hit and miss are hits and misses by kind of record, resolved once
	// (a warm read is a map lookup, not a label hash).
	hit, miss map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_meta_azure_requests_total",
			Help: "Requests of the Azure metadata index to the storage account, by operation and result (ok, not_found, conflict, error).",
		}, []string{"op", "result"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_meta_cache_hits_total",
			Help: "Record reads of the Azure metadata index answered by this replica's read cache, by kind of record.",
		}, []string{"kind"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_meta_cache_misses_total",
			Help: "Record reads of the Azure metadata index that asked the storage account, by kind of record.",
		}, []string{"kind"}),
		gateWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_meta_gate_waits_total",
			Help: "Linking writes that waited for another replica's exclusive section (garbage collection, startup check) to end.",
		}),
		races: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_meta_gate_races_total",
			Help: "Linking writes that failed because an exclusive section began on another replica while they were slow to commit.",
		}),
	}
	m.hit, m.miss = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, k := range []string{kTag, kManifest, kBlob, kRepo, kReferrers} {
		m.hit[k] = m.hits.WithLabelValues(kindLabel(k))
		m.miss[k] = m.misses.WithLabelValues(kindLabel(k))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.hits, m.misses, m.gateWaits, m.races} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// request counts one request of op that ended with err.
func (m *metrics) request(op string, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, azure.ErrNotFound):
		result = "not_found"
	case errors.Is(err, azure.ErrExists), errors.Is(err, azure.ErrConditionNotMet), errors.Is(err, azure.ErrLeaseConflict):
		result = "conflict"
	default:
		result = "error"
	}
	m.requests.WithLabelValues(op, result).Inc()
}
