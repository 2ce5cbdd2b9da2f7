package registry

import (
	"regexp"
	"strings"
)

// Route kinds, also the "route" label of HTTP metrics.
const (
	routePing      = "ping"
	routeCatalog   = "catalog"
	routeTags      = "tags"
	routeManifest  = "manifest"
	routeBlob      = "blob"
	routeUpload    = "upload"
	routeReferrers = "referrers"
	routeOther     = "other"
)

// request is a distribution API request parsed once from its path.
type request struct {
	kind string
	repo string
	ref  string // tag or digest (manifests), digest (blobs, referrers), upload id
}

var (
	reManifest  = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	reUpload    = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([^/]*)$`)
	reBlob      = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	reTags      = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	reReferrers = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

// parsePath maps a URL path to a request. It does not validate the name or
// reference: handlers do, so they can answer with the right error code.
func parsePath(p string) (request, bool) {
	switch p {
	case "/v2", "/v2/":
		return request{kind: routePing}, true
	case "/v2/_catalog":
		return request{kind: routeCatalog}, true
	}
	if !strings.HasPrefix(p, "/v2/") {
		return request{}, false
	}
	for _, r := range []struct {
		re   *regexp.Regexp
		kind string
	}{
		{reManifest, routeManifest}, {reUpload, routeUpload}, {reBlob, routeBlob},
		{reTags, routeTags}, {reReferrers, routeReferrers},
	} {
		if m := r.re.FindStringSubmatch(p); m != nil {
			req := request{kind: r.kind, repo: m[1]}
			if len(m) > 2 {
				req.ref = m[2]
			}
			return req, true
		}
	}
	return request{}, false
}
