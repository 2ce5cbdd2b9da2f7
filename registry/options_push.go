package registry

import (
	"net/http"
	"time"

	"github.com/airlock/airlock/registry/auth"
)

// Defaults for pushes.
const (
	DefaultMaxManifestSize = 4 << 20
	DefaultBodyIdleTimeout = 60 * time.Second
)

type pushConfig struct {
	maxManifest int64
	bodyIdle    time.Duration
}

func defaultPushConfig() pushConfig {
	return pushConfig{maxManifest: DefaultMaxManifestSize, bodyIdle: DefaultBodyIdleTimeout}
}

// WithMaxManifestSize bounds pushed manifests (413 above it).
func WithMaxManifestSize(n int64) Option {
	return func(r *Registry) {
		if n > 0 {
			r.push.maxManifest = n
		}
	}
}

// WithBodyIdleTimeout cuts a request body (an upload) that sends nothing
// for d; the upload session keeps what arrived.
func WithBodyIdleTimeout(d time.Duration) Option {
	return func(r *Registry) {
		if d > 0 {
			r.push.bodyIdle = d
		}
	}
}

// WithAuth turns authentication and authorization on: every request but
// /healthz and public routes must satisfy a.
func WithAuth(a auth.Authorizer) Option { return func(r *Registry) { r.authz = a } }

// WithPublicRoute is WithRoute for a route served without auth (health,
// readiness, the token endpoint).
func WithPublicRoute(prefix, label string, h http.Handler) Option {
	return func(r *Registry) { r.routes = append(r.routes, extraRoute{prefix, label, h, true}) }
}
