package registry

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/airlock/airlock/registry/auth"
	"github.com/distribution/distribution/v3/registry/api/errcode"
)

type subjectKey struct{}

// subject is who the request authenticated as ("" when anonymous or with
// auth off).
func subject(ctx context.Context) string {
	s, _ := ctx.Value(subjectKey{}).(string)
	return s
}

// clientKey names the client for per-client limits: its user, else its
// address.
func clientKey(r *http.Request) string {
	if s := subject(r.Context()); s != "" {
		return "user:" + s
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// wants is what a distribution API request needs.
func wants(r *http.Request, req request) []auth.Access {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch req.kind {
	case routePing:
		return nil
	case routeCatalog:
		return []auth.Access{auth.Catalog}
	case routeTags, routeReferrers:
		return []auth.Access{auth.Repository(req.repo, auth.ActionPull)}
	case routeManifest, routeBlob:
		switch {
		case read:
			return []auth.Access{auth.Repository(req.repo, auth.ActionPull)}
		case r.Method == http.MethodDelete:
			return []auth.Access{auth.Repository(req.repo, auth.ActionDelete)}
		}
		return []auth.Access{auth.Repository(req.repo, auth.ActionPush)}
	case routeUpload:
		return []auth.Access{auth.Repository(req.repo, auth.ActionPush)}
	}
	return nil
}

// allow authorizes *r for want. On success it records the subject in
// *r's context; otherwise it writes the 401 or 403 answer and returns false.
func (reg *Registry) allow(w http.ResponseWriter, r **http.Request, want []auth.Access) bool {
	if reg.authz == nil {
		return true
	}
	req := *r
	sub, err := reg.authz.Authorize(req, want)
	if err == nil {
		*r = req.WithContext(context.WithValue(req.Context(), subjectKey{}, sub))
		return true
	}
	detail := accessDetail(want)
	switch {
	case errors.Is(err, auth.ErrDenied):
		reg.writeError(w, req, newAPIError(errcode.ErrorCodeDenied, "requested access to the resource is denied", detail))
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("Www-Authenticate", reg.authz.Challenge(req, want))
		reg.writeError(w, req, newAPIError(errcode.ErrorCodeUnauthorized,
			"authentication required, visit https://aka.ms/acr/authorization for more information.", detail))
	default:
		reg.writeError(w, req, err)
	}
	return false
}

// accessDetail is the error detail ACR gives: the accesses asked for.
func accessDetail(want []auth.Access) any {
	type entry struct {
		Type, Name, Action string
	}
	out := make([]entry, 0, len(want))
	for _, a := range want {
		out = append(out, entry{a.Type, a.Name, a.Action})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
