package registry_test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A rule with a credential set pulls from an upstream that requires them,
// through the token flow and a CDN redirect; ggcr's client pulls through
// airlock and every digest verifies.
func TestCredentialSetTokenRedirectEndToEnd(t *testing.T) {
	t.Parallel()
	ar := upstreamtest.NewAuthRedirect(t, "puller", "s3cret")
	r := aksRule()
	r.CredentialSet = "mcr-creds"
	e := newEnv(t, envOpt{
		upstream: ar.Up, endpoint: ar.API.URL, rules: []rules.Rule{r},
		creds: map[string]upstream.Credentials{"mcr-creds": {Username: "puller", Password: "s3cret"}},
	})
	idx := ar.Up.PushIndex(t, "oss/kubernetes/coredns:v1.11.3", 50_000)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	ref, err := name.ParseReference(host+"/aks-managed-repository/oss/kubernetes/coredns:v1.11.3", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	wantD, _ := idx.Digest()
	if gotD, _ := got.Digest(); gotD != wantD {
		t.Fatalf("index digest %s, want %s", gotD, wantD)
	}
	im, _ := got.IndexManifest()
	for _, desc := range im.Manifests {
		img, err := got.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		readLayers(t, img)
	}
	if ar.AuthOnData.Load() != 0 {
		t.Fatal("credentials reached the data host")
	}
	if e.metric("airlock_upstream_requests_total", "rule", "aks-managed-mcr", "kind", "blob", "method", "GET") == 0 ||
		e.metric("airlock_cache_misses_total", "rule", "aks-managed-mcr", "kind", "blob") == 0 {
		t.Fatal("upstream/miss metrics not counted by rule")
	}
}

// readFromRecorder is a ResponseWriter that records what ReadFrom is given.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	src any
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.src = src
	return io.Copy(r.ResponseRecorder, src)
}

// A warm blob must reach the connection's ReadFrom with an *os.File inside,
// which is what lets net/http use sendfile.
func TestWarmBlobKeepsSendfilePath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 100_000, 1)
	d, want := layerOf(t, img)
	path := "/v2/" + repo + "/blobs/" + d.String()
	e.do("GET", path) // fill
	h := e.srv.Config.Handler
	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("warm GET: %d", rec.Code)
	}
	lr, ok := rec.src.(*io.LimitedReader)
	if !ok {
		t.Fatalf("ReadFrom got %T, want *io.LimitedReader of *os.File", rec.src)
	}
	if _, ok := lr.R.(*os.File); !ok {
		t.Fatalf("ReadFrom got a LimitedReader of %T, want *os.File", lr.R)
	}
}

func TestMetricsEndpointByRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	e.do("GET", "/v2/"+repo+"/manifests/3.10")
	e.do("GET", "/v2/"+repo+"/manifests/3.10")
	if got := e.metric("airlock_cache_hits_total", "rule", "aks-managed-mcr", "kind", "manifest"); got != 1 {
		t.Fatalf("hits %v", got)
	}
	if got := e.metric("airlock_cache_misses_total", "rule", "aks-managed-mcr", "kind", "manifest"); got != 1 {
		t.Fatalf("misses %v", got)
	}
	if got := e.metric("airlock_http_requests_total", "route", "manifest", "code", "200"); got != 2 {
		t.Fatalf("http requests by route %v", got)
	}
	if got := e.metric("airlock_upstream_bytes_total", "rule", "aks-managed-mcr"); got == 0 {
		t.Fatal("upstream bytes not counted")
	}
}
