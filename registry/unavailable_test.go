package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/registry"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// failing is a source whose storage fails on every request.
type failing struct{ err error }

func (f failing) Manifest(context.Context, string, string, bool) (*cache.Manifest, error) {
	return nil, f.err
}

func (f failing) Blob(context.Context, string, digest.Digest, bool) (*cache.Blob, error) {
	return nil, f.err
}

func (f failing) Tags(context.Context, string, string, int) ([]string, bool, error) {
	return nil, false, f.err
}

func (f failing) Catalog(context.Context, string, int) ([]string, bool, error) {
	return nil, false, f.err
}

func (f failing) Referrers(context.Context, string, digest.Digest, string) (*cache.Referrers, error) {
	return nil, f.err
}

// A storage failure WithUnavailable recognises is 503 UNAVAILABLE with
// Retry-After on every read path; any other stays 500 UNKNOWN.
func TestUnavailableStorage(t *testing.T) {
	t.Parallel()
	down := errors.New("dial tcp 127.0.0.1:10000: connect: connection refused")
	isDown := func(err error) bool { return errors.Is(err, down) }
	d := digest.FromString("x")
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{{down, http.StatusServiceUnavailable, "UNAVAILABLE"}, {errors.New("disk on fire"), http.StatusInternalServerError, "UNKNOWN"}} {
		reg, err := registry.New(failing{err: c.err}, zap.NewNop(), prometheus.NewRegistry(), registry.WithUnavailable(isDown))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/v2/_catalog", "/v2/a/tags/list", "/v2/a/manifests/v1", "/v2/a/blobs/" + d.String(), "/v2/a/referrers/" + d.String()} {
			w := httptest.NewRecorder()
			reg.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			var body struct{ Errors []struct{ Code string } }
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != c.status || len(body.Errors) != 1 || body.Errors[0].Code != c.code {
				t.Errorf("%v: GET %s: %d %s, want %d %s", c.err, path, w.Code, w.Body, c.status, c.code)
			}
			if retry := w.Header().Get("Retry-After"); (c.status == http.StatusServiceUnavailable) != (retry != "") {
				t.Errorf("%v: GET %s: Retry-After %q", c.err, path, retry)
			}
		}
	}
}
