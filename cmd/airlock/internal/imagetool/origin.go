package imagetool

import (
	"net/http"
	"strings"
	"sync"
)

// headerOrigin marks a response airlock fetched from the upstream for this
// request (as ACR does).
const headerOrigin = "X-Azure-Origin"

// origins is a RoundTripper that remembers which blob and manifest GETs
// airlock answered from the upstream rather than its cache, by request
// path (/v2/<repo>/blobs/<digest>, /v2/<repo>/manifests/<ref>).
type origins struct {
	inner    http.RoundTripper
	mu       sync.Mutex
	upstream map[string]bool
}

func newOrigins(inner http.RoundTripper) *origins {
	return &origins{inner: inner, upstream: map[string]bool{}}
}

// RoundTrip implements http.RoundTripper.
func (o *origins) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.inner.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet && resp.Header.Get(headerOrigin) == "upstream" {
		o.mu.Lock()
		o.upstream[req.URL.Path] = true
		o.mu.Unlock()
	}
	return resp, err
}

// blobFromUpstream reports whether blob d of repository repo (as the
// registry names it) came from the upstream.
func (o *origins) blobFromUpstream(repo, d string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.upstream["/v2/"+repo+"/blobs/"+d]
}

// manifestsFromUpstream counts the manifests that came from the upstream.
func (o *origins) manifestsFromUpstream() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for p := range o.upstream {
		if strings.Contains(p, "/manifests/") {
			n++
		}
	}
	return n
}
