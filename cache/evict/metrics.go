package evict

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	pinned, pushed prometheus.Gauge
	evictedImages  prometheus.Counter
	evictedBytes   prometheus.Counter
	runs, deleted  prometheus.Counter
	duration       prometheus.Histogram
	stored, quota  prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, c *Collector) (*metrics, error) {
	m := &metrics{
		stored: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airlock_storage_bytes", Help: "Bytes of committed blobs in the content store (walked at each collection, plus commits since).",
		}, func() float64 { return float64(c.Used()) }),
		quota: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airlock_storage_quota_bytes", Help: "storage.maxBytes: the content store's quota (0: unbounded).",
		}, func() float64 { return float64(c.policy.Load().MaxBytes) }),
		pinned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_storage_pinned_bytes", Help: "Bytes held by pinned images (never evicted), at the last collection.",
		}),
		pushed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_storage_pushed_bytes", Help: "Bytes held by pushed or imported-as-pushed content (never evicted), at the last collection.",
		}),
		evictedImages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_evicted_images_total", Help: "Cached images (and orphan blob links) evicted as least recently used.",
		}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_evicted_bytes_total", Help: "Bytes freed by eviction (blobs no remaining image needs).",
		}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_gc_runs_total", Help: "Garbage collections (each evicts down to the low watermark when over the high one).",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_gc_deleted_blobs_total", Help: "Blob files deleted by garbage collection (evicted or unreferenced).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "airlock_gc_duration_seconds", Help: "Duration of garbage collections.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	for _, col := range []prometheus.Collector{m.stored, m.quota, m.pinned, m.pushed, m.evictedImages, m.evictedBytes, m.runs, m.deleted, m.duration} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
