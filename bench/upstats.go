package bench

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/airlock/airlock/upstream/mar"
)

// Upstream sources.
const (
	sourceMAR     = "mar"     // the emulator's /_mar/stats: every request, per blob
	sourceAirlock = "airlock" // airlock's /metrics: its upstream requests, bytes, cache hits
)

// The airlock metrics the bench reads (cache/engine, upstream/ociclient).
const (
	metricUpRequests  = "airlock_upstream_requests_total"      // by rule, kind, method
	metricUpBytes     = "airlock_upstream_bytes_total"         // by rule
	metricUpHTTP      = "airlock_upstream_http_requests_total" // by host, method, code
	metricCacheHits   = "airlock_cache_hits_total"
	metricCacheMisses = "airlock_cache_misses_total"
	metricCoalesced   = "airlock_cache_coalesced_total"
)

// statsSource counts what a registry under test asked of its upstream:
// the emulator's counters (behind it, or the registry itself), or the
// registry's own metrics when it is airlock. Either may be missing.
type statsSource struct {
	marURL     string       // emulator registry URL; "" = none
	metricsURL string       // airlock's /metrics; "" = none
	client     *http.Client // for metricsURL
	user, pass string       // Basic credentials for metricsURL (airlock wants an admin)
}

// counts is one reading of a statsSource.
type counts struct {
	mar     *mar.Stats
	metrics map[string]sample // by name and labels
}

// sample is one counter of a metrics scrape.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// any reports whether the source counts anything.
func (s *statsSource) any() bool { return s.marURL != "" || s.metricsURL != "" }

// read takes one reading.
func (s *statsSource) read(ctx context.Context) (counts, error) {
	var c counts
	if s.marURL != "" {
		st, err := mar.FetchStats(ctx, s.marURL)
		if err != nil {
			return c, err
		}
		c.mar = &st
	}
	if s.metricsURL != "" {
		m, err := s.scrape(ctx)
		if err != nil {
			return c, err
		}
		c.metrics = m
	}
	return c, nil
}

// settled reads until two readings 50 ms apart agree three times (at most
// 2 s): a request is counted when its handler returns, which can be just
// after the client read its last byte.
func (s *statsSource) settled(ctx context.Context) (counts, error) {
	c, err := s.read(ctx)
	if err != nil {
		return c, err
	}
	deadline := time.Now().Add(2 * time.Second)
	for stable := 0; stable < 3 && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
		next, err := s.read(ctx)
		if err != nil {
			return c, err
		}
		if next.total() == c.total() {
			stable++
		} else {
			stable = 0
		}
		c = next
	}
	return c, nil
}

// total is a figure that moves with any upstream request.
func (c counts) total() [3]float64 {
	var t [3]float64
	if c.mar != nil {
		t[0], t[1] = float64(c.mar.Total()), float64(c.mar.BytesSent)
	}
	for _, s := range c.metrics {
		if s.name == metricUpHTTP || s.name == metricUpBytes {
			t[2] += s.value
		}
	}
	return t
}

// scrape reads the counters of airlock's /metrics.
func (s *statsSource) scrape(ctx context.Context) (map[string]sample, error) {
	fams, err := metricFamilies(ctx, s.client, s.metricsURL, s.user, s.pass)
	if err != nil {
		return nil, err
	}
	out := map[string]sample{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "airlock_") || f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range f.GetMetric() {
			s := sample{name: name, labels: map[string]string{}, value: m.GetCounter().GetValue()}
			var keys []string
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
				keys = append(keys, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(keys)
			out[name+"{"+strings.Join(keys, ",")+"}"] = s
		}
	}
	return out, nil
}

// upstream returns what happened between two readings, for the blobs of
// one node's pull.
func (s *statsSource) upstream(before, after counts, blobs map[string]int64) Upstream {
	var u Upstream
	switch {
	case after.mar != nil && before.mar != nil:
		u = upstreamStats(diffStats(*before.mar, *after.mar), blobs)
	case after.metrics != nil:
		u = Upstream{Blobs: len(blobs), ByKind: map[string]int64{}, Source: sourceAirlock}
		for _, size := range blobs {
			u.BlobSize += size
		}
	default:
		return Upstream{}
	}
	if after.metrics == nil || before.metrics == nil {
		return u
	}
	d := func(pick func(sample) bool) int64 {
		var v float64
		for k, a := range after.metrics {
			if pick(a) {
				v += a.value - before.metrics[k].value
			}
		}
		return int64(v + 0.5)
	}
	named := func(n string) func(sample) bool { return func(s sample) bool { return s.name == n } }
	u.CacheHits, u.CacheMisses, u.Coalesced = d(named(metricCacheHits)), d(named(metricCacheMisses)), d(named(metricCoalesced))
	if u.Source != sourceAirlock {
		return u // the emulator counted the upstream side
	}
	u.Requests = d(named(metricUpHTTP))
	u.Errors = d(func(s sample) bool {
		c := s.labels["code"]
		return s.name == metricUpHTTP && (c == "0" || c == "429" || strings.HasPrefix(c, "5"))
	})
	u.Bytes = d(named(metricUpBytes))
	u.BlobBytes = u.Bytes // manifests included: airlock counts bytes per rule only
	u.BlobFetches = d(func(s sample) bool {
		return s.name == metricUpRequests && s.labels["kind"] == "blob" && s.labels["method"] == http.MethodGet
	})
	u.BlobDataGETs = u.BlobFetches
	u.ManifestGETs = d(func(s sample) bool {
		return s.name == metricUpRequests && s.labels["kind"] == "manifest" && s.labels["method"] == http.MethodGet
	})
	for k, a := range after.metrics {
		if a.name == metricUpRequests {
			if n := int64(a.value - before.metrics[k].value + 0.5); n > 0 {
				u.ByKind[a.labels["method"]+" "+a.labels["kind"]] += n
			}
		}
	}
	if u.BlobSize > 0 {
		u.BytesRatio = float64(u.Bytes) / float64(u.BlobSize)
	}
	return u
}

// diffStats returns what the emulator counted between two readings.
func diffStats(before, after mar.Stats) mar.Stats {
	key := func(r mar.RequestStat) mar.RequestStat {
		r.Count, r.Bytes, r.Aborted = 0, 0, 0
		return r
	}
	prev := map[mar.RequestStat]mar.RequestStat{}
	for _, r := range before.Requests {
		prev[key(r)] = r
	}
	out := mar.Stats{Statuses: map[string]int64{}, BytesByDigest: map[string]int64{}, Connections: map[string]int64{}}
	for _, r := range after.Requests {
		p := prev[key(r)]
		r.Count -= p.Count
		r.Bytes -= p.Bytes
		r.Aborted -= p.Aborted
		if r.Count <= 0 && r.Bytes <= 0 {
			continue
		}
		out.Requests = append(out.Requests, r)
		out.Statuses[fmt.Sprint(r.Status)] += r.Count
		out.BytesSent += r.Bytes
		if r.Digest != "" && r.Bytes > 0 {
			out.BytesByDigest[r.Digest] += r.Bytes
		}
	}
	for k, v := range after.Connections {
		out.Connections[k] = v - before.Connections[k]
	}
	return out
}
