package mar

import (
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/mar/fault"
)

// route is a registry request parsed once.
type route struct {
	kind   Kind
	admin  bool   // /_mar/...
	repo   string // repository name ("" for ping, token, catalog)
	ref    string // manifests: the tag or digest as requested
	digest string // blob / referrers digest, or the manifest digest (resolved for tags)
	badRef bool   // repo or reference failed validation
}

// parseRoute classifies a registry-listener request. Unknown query
// parameters (such as containerd's ns=) are ignored.
func parseRoute(r *http.Request) route {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/_mar/") || p == "/_mar":
		return route{admin: true}
	case p == "/oauth2/token":
		return route{kind: fault.KindToken}
	case p == "/v2" || p == "/v2/":
		return route{kind: fault.KindPing}
	case p == "/v2/_catalog":
		return route{kind: fault.KindCatalog}
	case !strings.HasPrefix(p, "/v2/"):
		return route{kind: fault.KindOther}
	}
	p = strings.TrimPrefix(p, "/v2/")
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return named(route{kind: fault.KindTags, repo: name})
	}
	for _, s := range []struct {
		sep  string
		kind Kind
	}{{"/manifests/", fault.KindManifest}, {"/blobs/", fault.KindBlob}, {"/referrers/", fault.KindReferrers}} {
		i := strings.LastIndex(p, s.sep)
		if i <= 0 {
			continue
		}
		rt := route{kind: s.kind, repo: p[:i], ref: p[i+len(s.sep):]}
		if rt.ref == "" || strings.Contains(rt.ref, "/") || strings.HasPrefix(rt.ref, "uploads") {
			return route{kind: fault.KindOther, repo: rt.repo}
		}
		if h, err := v1.NewHash(rt.ref); err == nil {
			rt.digest = h.String()
		} else if s.kind != fault.KindManifest || !reference.ValidTag(rt.ref) {
			rt.badRef = true
		}
		return named(rt)
	}
	return route{kind: fault.KindOther}
}

func named(rt route) route {
	if !rules.ValidRepository(rt.repo) {
		rt.badRef = true
	}
	return rt
}
