package registry

import "strings"

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

// parsePath maps a URL path to a request. It does not validate the name or
// reference: handlers do, so they can answer with the right error code. The
// name is everything before the last route keyword, as in the spec's
// grammar (/v2/<name>/manifests/<reference>), so names may contain the
// keywords as components.
func parsePath(p string) (request, bool) {
	switch p {
	case "/v2", "/v2/":
		return request{kind: routePing}, true
	case "/v2/_catalog":
		return request{kind: routeCatalog}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return request{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return request{}, false
	}
	head, last := rest[:i], rest[i+1:]
	for _, r := range routes {
		if r.needRef && last == "" || r.last != "" && last != r.last {
			continue
		}
		if repo, ok := strings.CutSuffix(head, r.suffix); ok && repo != "" {
			req := request{kind: r.kind, repo: repo}
			if r.last == "" {
				req.ref = last
			}
			return req, true
		}
	}
	return request{}, false
}

// routes in order of precedence: /v2/<name><suffix>/<last or reference>.
var routes = [...]struct {
	kind, suffix, last string
	needRef            bool
}{
	{kind: routeManifest, suffix: "/manifests", needRef: true},
	{kind: routeUpload, suffix: "/blobs/uploads"},
	{kind: routeBlob, suffix: "/blobs", needRef: true},
	{kind: routeTags, suffix: "/tags", last: "list"},
	{kind: routeReferrers, suffix: "/referrers", needRef: true},
}
