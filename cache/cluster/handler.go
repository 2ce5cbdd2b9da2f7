package cluster

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlock/airlock/internal/ocierr"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The peer routes.
const (
	// PeerPrefix is where the peer surface is mounted.
	PeerPrefix = "/_airlock/peer"
	// PingPath answers whether the replica is ready.
	PingPath = PeerPrefix + "/ping"
	// peerV2 is the OCI API as peers call it.
	peerV2 = PeerPrefix + "/v2"
)

// HandlerOption tunes PeerHandler.
type HandlerOption func(*peerHandler)

// WithReady makes the ping endpoint answer 503 while ready returns false
// (Membership.Ready); without it the replica is always ready.
func WithReady(ready func() bool) HandlerOption {
	return func(h *peerHandler) { h.ready = ready }
}

type peerHandler struct {
	inner    http.Handler
	cred     *Credential
	self     string
	ready    func() bool
	log      *zap.Logger
	rejected *prometheus.CounterVec
}

// PeerHandler serves the peer surface under PeerPrefix (mount it at
// PeerPrefix+"/", without client auth): every request must be signed
// with cred (else 401 with OCI error JSON; 503 while cred has no key yet)
// and GET or HEAD (else 405).
// PingPath answers 200 with this replica's address in HeaderPeer while it
// is ready, else 503; PeerPrefix+"/v2/..." is passed to inner as
// "/v2/...", its context marked with the sender (FromPeer). inner is the
// registry's OCI handler without client auth; the ResponseWriter is passed
// through untouched, so sendfile still works.
func PeerHandler(inner http.Handler, cred *Credential, self string, log *zap.Logger, reg prometheus.Registerer, opts ...HandlerOption) (http.Handler, error) {
	h := &peerHandler{
		inner: inner, cred: cred, self: self, log: log,
		ready: func() bool { return true },
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cluster_peer_rejected_total",
			Help: "Requests to the peer endpoints refused for want of a valid peer signature, by reason (unsigned, stale, bad; nokey: this replica has not loaded the peer key yet).",
		}, []string{"reason"}),
	}
	for _, o := range opts {
		o(h)
	}
	if err := reg.Register(h.rejected); err != nil {
		return nil, fmt.Errorf("cluster: metrics: %w", err)
	}
	return h, nil
}

func (h *peerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PeerPrefix && !strings.HasPrefix(r.URL.Path, PeerPrefix+"/") {
		ocierr.Write(w, r, http.StatusNotFound, errcode.ErrorCodeUnsupported.WithMessage("not a peer path"))
		return
	}
	p, err := h.cred.Verify(r)
	if errors.Is(err, ErrNoKey) {
		h.rejected.WithLabelValues("nokey").Inc()
		w.Header().Set("Retry-After", "1")
		ocierr.Write(w, r, http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable.WithMessage("replica not ready: "+err.Error()))
		return
	}
	if err != nil {
		reason := "bad"
		switch {
		case errors.Is(err, ErrUnsigned):
			reason = "unsigned"
		case errors.Is(err, ErrStale):
			reason = "stale"
		}
		h.rejected.WithLabelValues(reason).Inc()
		h.log.Debug("peer request refused", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Error(err))
		w.Header().Set("Www-Authenticate", "Airlock-Peer")
		ocierr.Write(w, r, http.StatusUnauthorized, errcode.ErrorCodeUnauthorized.WithMessage("peer endpoints need a valid peer signature: "+err.Error()))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		ocierr.Write(w, r, http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported.WithMessage("peer endpoints serve GET and HEAD only"))
		return
	}
	switch {
	case r.URL.Path == PingPath:
		h.ping(w, r)
	case r.URL.Path == peerV2 || strings.HasPrefix(r.URL.Path, peerV2+"/"):
		h.inner.ServeHTTP(w, stripPrefix(r.WithContext(WithPeer(r.Context(), p))))
	default:
		ocierr.Write(w, r, http.StatusNotFound, errcode.ErrorCodeUnsupported.WithMessage("unknown peer path"))
	}
}

// ping answers whether this replica is ready, naming it.
func (h *peerHandler) ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderPeer, h.self)
	if !h.ready() {
		ocierr.Write(w, r, http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable.WithMessage("replica not ready"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("{}"))
	}
}

// stripPrefix rewrites r (a shallow copy of the received request) to the
// path the registry serves: PeerPrefix+"/v2/x" becomes "/v2/x".
func stripPrefix(r *http.Request) *http.Request {
	u := *r.URL
	u.Path = strings.TrimPrefix(u.Path, PeerPrefix)
	u.RawPath = strings.TrimPrefix(u.RawPath, PeerPrefix)
	r.URL = &u
	r.RequestURI = strings.TrimPrefix(r.RequestURI, PeerPrefix)
	return r
}
