package registry

import (
	"net/http"
	"time"

	"github.com/airlock/airlock/registry/auth"
)

// Option configures a Registry. The options, by topic: extra routes
// (WithRoute, WithPublicRoute), authentication (WithAuth), storage
// failures (WithUnavailable) and request limits (WithMaxManifestSize,
// WithBodyIdleTimeout).
type Option func(*Registry)

// Routes.

type extraRoute struct {
	prefix string
	label  string
	h      http.Handler
	public bool // served without auth; others need the admin access
}

// WithRoute serves paths equal to prefix, or under it when prefix ends in
// "/", with h (metrics, health, admin API). label names the route in metrics.
// With auth on, such a route needs the admin access (see WithPublicRoute).
func WithRoute(prefix, label string, h http.Handler) Option {
	return func(r *Registry) { r.routes = append(r.routes, extraRoute{prefix, label, h, false}) }
}

// WithPublicRoute is WithRoute for a route served without auth (health,
// readiness, the token endpoint).
func WithPublicRoute(prefix, label string, h http.Handler) Option {
	return func(r *Registry) { r.routes = append(r.routes, extraRoute{prefix, label, h, true}) }
}

// Authentication.

// WithAuth turns authentication and authorization on: every request but
// /healthz and public routes must satisfy a.
func WithAuth(a auth.Authorizer) Option { return func(r *Registry) { r.authz = a } }

// Storage failures.

// WithUnavailable answers 503 UNAVAILABLE (with Retry-After), rather than
// 500 UNKNOWN, for the failures f recognises: a shared store that cannot
// be reached is unavailable, and never "unknown".
func WithUnavailable(f func(error) bool) Option { return func(r *Registry) { r.unavailable = f } }

// Request limits.

// Defaults of the request limits.
const (
	DefaultMaxManifestSize = 4 << 20
	DefaultBodyIdleTimeout = 60 * time.Second
)

// limits bound what a client may send.
type limits struct {
	maxManifest int64         // a pushed manifest's body
	bodyIdle    time.Duration // silence within a request body
}

func defaultLimits() limits {
	return limits{maxManifest: DefaultMaxManifestSize, bodyIdle: DefaultBodyIdleTimeout}
}

// WithMaxManifestSize bounds pushed manifests (413 above it).
func WithMaxManifestSize(n int64) Option {
	return func(r *Registry) {
		if n > 0 {
			r.limits.maxManifest = n
		}
	}
}

// WithBodyIdleTimeout cuts a request body (an upload) that sends nothing
// for d; the upload session keeps what arrived.
func WithBodyIdleTimeout(d time.Duration) Option {
	return func(r *Registry) {
		if d > 0 {
			r.limits.bodyIdle = d
		}
	}
}
