package evict

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/airlock/airlock/rules"
	"github.com/opencontainers/go-digest"
)

// Ref is a local image reference: a repository and a tag or a digest.
type Ref struct {
	Repo   string
	Tag    string        // "" when Digest is set
	Digest digest.Digest // "" when Tag is set
}

func (r Ref) String() string {
	if r.Digest != "" {
		return r.Repo + "@" + r.Digest.String()
	}
	return r.Repo + ":" + r.Tag
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ParseRef parses "repo:tag", "repo@digest" or "repo:tag@digest" (the
// digest wins) as written in pins, e.g.
// aks-managed-repository/oss/kubernetes/pause:3.10.
func ParseRef(s string) (Ref, error) {
	var r Ref
	name := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		d, err := digest.Parse(s[i+1:])
		if err != nil {
			return Ref{}, fmt.Errorf("reference %q: bad digest: %v", s, err)
		}
		r.Digest, name = d, s[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if r.Digest == "" {
			r.Tag = name[i+1:]
			if !tagRE.MatchString(r.Tag) {
				return Ref{}, fmt.Errorf("reference %q: bad tag %q", s, r.Tag)
			}
		}
		name = name[:i]
	}
	if r.Tag == "" && r.Digest == "" {
		return Ref{}, fmt.Errorf("reference %q needs a :tag or an @digest", s)
	}
	if !rules.ValidRepository(name) {
		return Ref{}, fmt.Errorf("reference %q: %q is not a valid repository name", s, name)
	}
	r.Repo = name
	return r, nil
}
