package server

import (
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metricsRegistry is the server's Prometheus registry. It also remembers
// the description of every metric registered, so that what airlock
// exports can be listed (the Grafana dashboard is checked against it).
type metricsRegistry struct {
	*prometheus.Registry
	mu    sync.Mutex
	descs []*prometheus.Desc
}

func newMetricsRegistry() *metricsRegistry {
	return &metricsRegistry{Registry: prometheus.NewRegistry()}
}

// Register implements prometheus.Registerer.
func (r *metricsRegistry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range ch {
		r.descs = append(r.descs, d)
	}
	return nil
}

// MustRegister implements prometheus.Registerer.
func (r *metricsRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// exported maps every metric name registered to its variable labels.
func (r *metricsRegistry) exported() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, d := range r.descs {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		sort.Strings(labels)
		out[m[1]] = labels
	}
	return out
}
