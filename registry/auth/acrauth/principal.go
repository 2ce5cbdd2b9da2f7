package acrauth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/airlock/airlock/registry/auth"
	"golang.org/x/crypto/bcrypt"
)

// principal is a user or a token.
type principal struct {
	name   string
	hash   []byte
	user   bool // every repository action and the catalog
	admin  bool // and the metrics and admin API
	grants []grant
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func newPrincipal(name, hash string) (*principal, error) {
	if !nameRE.MatchString(name) || name == nullGUID {
		return nil, errors.New("name must be 1-64 of letters, digits, . _ @ - (starting with a letter or digit)")
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return nil, errors.New("passwordHash is not a bcrypt hash (make one with: airlock hash-password)")
	}
	return &principal{name: name, hash: []byte(hash)}, nil
}

func (p *principal) may(a auth.Access) bool {
	switch {
	case a.Type == auth.TypeRegistry && a.Name == auth.Admin.Name:
		return p.admin
	case a.Type == auth.TypeRegistry && a.Name == auth.Catalog.Name:
		return p.user
	case a.Type != auth.TypeRepository:
		return false
	case p.user:
		return true
	}
	for _, g := range p.grants {
		if g.actions[a.Action] && g.pattern.match(a.Name) {
			return true
		}
	}
	return false
}

// grant is one scope map entry: actions on a repository pattern.
type grant struct {
	pattern pattern
	actions map[string]bool
}

func newGrant(sc Scope) ([]grant, error) {
	if len(sc.Repositories) == 0 || len(sc.Actions) == 0 {
		return nil, errors.New("a scope needs repositories and actions")
	}
	actions := map[string]bool{}
	for _, a := range sc.Actions {
		switch a {
		case auth.ActionPull, auth.ActionPush, auth.ActionDelete:
			actions[a] = true
		case auth.ActionAll:
			actions[auth.ActionPull], actions[auth.ActionPush], actions[auth.ActionDelete] = true, true, true
		default:
			return nil, fmt.Errorf("action %q must be pull, push, delete or *", a)
		}
	}
	var out []grant
	for _, r := range sc.Repositories {
		pt, err := newPattern(r)
		if err != nil {
			return nil, err
		}
		out = append(out, grant{pattern: pt, actions: actions})
	}
	return out, nil
}

// pattern is a repository name, a namespace "ns/*" (every repository
// under ns/), or "*".
type pattern string

var componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

func newPattern(s string) (pattern, error) {
	if s == "*" {
		return pattern(s), nil
	}
	name := strings.TrimSuffix(s, "/*")
	if name == "" || len(name) > 255 {
		return "", fmt.Errorf("repository pattern %q is not a name, a namespace/* or *", s)
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRE.MatchString(c) {
			return "", fmt.Errorf("repository pattern %q is not a name, a namespace/* or *", s)
		}
	}
	return pattern(s), nil
}

func (p pattern) match(repo string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasSuffix(string(p), "/*"):
		return strings.HasPrefix(repo, string(p[:len(p)-1]))
	}
	return string(p) == repo
}

func matchAny(ps []pattern, repo string) bool {
	for _, p := range ps {
		if p.match(repo) {
			return true
		}
	}
	return false
}

func cacheKey(name, pass string, hash []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	h.Write([]byte{0})
	h.Write(hash)
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}
