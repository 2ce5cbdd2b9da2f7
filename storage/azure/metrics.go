package azure

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// WithMetrics counts every request the client sends (each try of it) in
// airlock_storage_requests_total on reg: by area (the first segment of
// the blob's name, "container" for the container's own operations),
// method and status code ("error" without an answer). On Azure each is a
// billed transaction and counts toward the account's request rate.
func WithMetrics(reg prometheus.Registerer) Option { return func(o *options) { o.metrics = reg } }

// countRequests is the policy WithMetrics adds.
type countRequests struct {
	prefix string // the container's path: what precedes a blob's name
	c      *prometheus.CounterVec
}

func newCountRequests(reg prometheus.Registerer, containerPath string) (*countRequests, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_storage_requests_total",
		Help: "Requests to the Azure Blob Storage container (each try), by area (first segment of the blob name, or container), method and status code.",
	}, []string{"area", "method", "code"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("azure: metrics: %w", err)
	}
	return &countRequests{prefix: strings.TrimSuffix(containerPath, "/") + "/", c: c}, nil
}

// Do implements policy.Policy.
func (p *countRequests) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	code := "error"
	if resp != nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	p.c.WithLabelValues(p.area(req.Raw().URL.Path), req.Raw().Method, code).Inc()
	return resp, err
}

// area is the first segment of the blob name in path, or "container".
func (p *countRequests) area(path string) string {
	name, ok := strings.CutPrefix(path, p.prefix)
	if !ok || name == "" {
		return "container"
	}
	area, _, _ := strings.Cut(name, "/")
	return area
}
