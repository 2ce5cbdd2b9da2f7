// Package registry is airlock's OCI distribution API front end: it parses
// each request once, serves pulls from a cache.Source, writes OCI error
// JSON, and logs and measures every request. It depends only on the cache
// contract, never on an implementation.
package registry

import (
	"net/http"
	"strings"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/internal/httprec"
	"github.com/airlock/airlock/registry/auth"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Registry serves the distribution API. Create it with New.
type Registry struct {
	src    cache.Source
	log    *zap.Logger
	m      *metrics
	routes []extraRoute
	now    func() time.Time
	authz  auth.Authorizer // nil: auth off (WithAuth)
	limits limits
	// unavailable recognises storage failures answered 503 (nil: none).
	unavailable func(error) bool
}

// New returns a registry serving src.
func New(src cache.Source, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Registry, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Registry{src: src, log: log, m: m, now: time.Now, limits: defaultLimits()}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// ServeHTTP implements http.Handler.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := reg.now()
	rw := httprec.New(w)
	label := routeOther
	defer func() {
		reg.observe(r, rw, label, start)
	}()
	if r.URL.Path == "/healthz" {
		label = "healthz"
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.WriteHeader(http.StatusOK)
		rw.Write([]byte("ok\n"))
		return
	}
	for _, x := range reg.routes {
		if r.URL.Path == x.prefix || (strings.HasSuffix(x.prefix, "/") && strings.HasPrefix(r.URL.Path, x.prefix)) {
			label = x.label
			if !x.public && !reg.allow(rw, &r, []auth.Access{auth.Admin}) {
				return
			}
			x.h.ServeHTTP(rw, r)
			return
		}
	}
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	req, ok := parsePath(r.URL.Path)
	if !ok {
		reg.writeError(rw, r, newAPIError(errcode.ErrorCodeUnsupported, "unknown API path", r.URL.Path))
		return
	}
	label = req.kind
	if !reg.allow(rw, &r, wants(r, req)) {
		return
	}
	if err := reg.dispatch(rw, r, req); err != nil {
		reg.writeError(rw, r, err)
	}
}

func (reg *Registry) dispatch(w http.ResponseWriter, r *http.Request, req request) error {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch req.kind {
	case routePing:
		if !read {
			return methodNotAllowed(r)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return nil
	case routeCatalog:
		if r.Method != http.MethodGet {
			return methodNotAllowed(r)
		}
		return reg.catalog(w, r)
	case routeTags:
		if r.Method != http.MethodGet {
			return methodNotAllowed(r)
		}
		return reg.tags(w, r, req)
	case routeReferrers:
		if r.Method != http.MethodGet {
			return methodNotAllowed(r)
		}
		return reg.referrers(w, r, req)
	case routeManifest:
		if read {
			return reg.manifest(w, r, req)
		}
	case routeBlob:
		if read {
			return reg.blob(w, r, req)
		}
	}
	return reg.write(w, r, req)
}

// write answers requests that would change content (and upload status).
// Repositories under a cache rule are read-only: DENIED. Elsewhere they
// go to the source's push abilities (push.go, upload.go), if it has them.
func (reg *Registry) write(w http.ResponseWriter, r *http.Request, req request) error {
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
	case http.MethodGet:
		if req.kind != routeUpload {
			return methodNotAllowed(r)
		}
	default:
		return methodNotAllowed(r)
	}
	if m, ok := reg.src.(cache.RuleMatcher); ok {
		if rule, cached := m.CacheRule(req.repo); cached {
			return newAPIError(errcode.ErrorCodeDenied,
				"repository "+req.repo+" is a cache of an upstream (rule "+rule+"): push and delete are denied", nil)
		}
	}
	return reg.change(w, r, req)
}

func methodNotAllowed(r *http.Request) error {
	return newAPIError(errcode.ErrorCodeUnsupported, "method "+r.Method+" is not allowed here", nil)
}
