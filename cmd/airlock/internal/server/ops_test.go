package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Until the store check is done, /readyz and the registry API answer 503
// (never 404, which would send containerd past the cache); /healthz and
// /metrics answer at once.
func TestReadinessGate(t *testing.T) {
	t.Parallel()
	o := &ops{}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			o.readyz(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := o.gate(next)
	code := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code
	}
	for _, c := range []struct {
		path        string
		before, now int
	}{
		{"/healthz", 200, 200},
		{"/metrics", 200, 200},
		{"/readyz", 503, 200},
		{"/v2/", 503, 200},
		{"/v2/aks-managed-repository/oss/kubernetes/pause/manifests/3.10", 503, 200},
	} {
		if got := code(c.path); got != c.before {
			t.Errorf("%s before the check: %d, want %d", c.path, got, c.before)
		}
		o.ready.Store(true)
		if got := code(c.path); got != c.now {
			t.Errorf("%s after the check: %d, want %d", c.path, got, c.now)
		}
		o.ready.Store(false)
	}
}
