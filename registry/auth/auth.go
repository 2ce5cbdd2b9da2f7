// Package auth is the contract between the registry front end and
// whatever decides who may do what: the accesses a request needs, in the
// docker token scope model (type, name, action), and the answer. The
// ACR-style implementation (users, scoped tokens, JWTs) is in acrauth.
package auth

import (
	"errors"
	"net/http"
	"strings"
)

// Sentinel errors of Authorize.
var (
	// ErrUnauthenticated means the request carries no valid credential, or
	// a token without the scope it needs: answered 401 with a challenge.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrDenied means the credential is valid but not allowed: 403.
	ErrDenied = errors.New("access denied")
)

// Resource types and actions.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"

	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// Access is one permission a request needs.
type Access struct {
	Type   string // TypeRepository or TypeRegistry
	Name   string // a repository, or "catalog" / "admin" for TypeRegistry
	Action string
}

// Catalog is the access listing repositories needs.
var Catalog = Access{Type: TypeRegistry, Name: "catalog", Action: ActionAll}

// Admin is the access the metrics and the admin API need.
var Admin = Access{Type: TypeRegistry, Name: "admin", Action: ActionAll}

// Repository returns the access to act on a repository.
func Repository(name, action string) Access {
	return Access{Type: TypeRepository, Name: name, Action: action}
}

// Scope formats accesses as a token scope: "repository:a/b:pull,push",
// with one space-separated entry per resource.
func Scope(want []Access) string {
	var out []string
	idx := map[string]int{}
	for _, a := range want {
		k := a.Type + ":" + a.Name
		if i, ok := idx[k]; ok {
			out[i] += "," + a.Action
			continue
		}
		idx[k] = len(out)
		out = append(out, k+":"+a.Action)
	}
	return strings.Join(out, " ")
}

// Authorizer decides whether a request may do what it asks.
type Authorizer interface {
	// Authorize returns the subject r authenticates as ("" when anonymous
	// access sufficed) if r may perform every access in want; an empty
	// want only asks that r be authenticated. Otherwise the error wraps
	// ErrUnauthenticated or ErrDenied; its text never holds a credential.
	Authorize(r *http.Request, want []Access) (subject string, err error)
	// Challenge is the Www-Authenticate value of a 401 answer to r.
	Challenge(r *http.Request, want []Access) string
}
