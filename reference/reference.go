// Package reference is airlock's one definition of image references and
// tags: [host/]repository[:tag][@digest] as image lists, bundles and pins
// write them, checked against the distribution spec's grammar as
// github.com/distribution/reference implements it. A tag is valid where
// the spec says so; a repository is a valid OCI repository name
// (rules.ValidRepository, the same grammar); a digest is one go-digest
// accepts.
package reference

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/airlock/airlock/rules"
	distref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Ref is an image reference.
type Ref struct {
	Host   string // registry host[:port]; "" for a local repository
	Repo   string // repository, without the host
	Tag    string // "" when the reference names only a digest
	Digest digest.Digest
}

// String is the reference as written: [host/]repo[:tag][@digest].
func (r Ref) String() string {
	s := r.Repo
	if r.Host != "" {
		s = r.Host + "/" + s
	}
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Identifier is what a manifest request names: the digest when there is
// one, else the tag.
func (r Ref) Identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// In is the reference in repository repo of the registry it is pulled
// from: repo:tag, or repo@digest when there is a digest.
func (r Ref) In(repo string) string {
	if r.Digest != "" {
		return repo + "@" + r.Digest.String()
	}
	return repo + ":" + r.Tag
}

// anchoredTag is the spec's tag grammar, [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
var anchoredTag = regexp.MustCompile(`^(?:` + distref.TagRegexp.String() + `)$`)

// ValidTag reports whether s is a valid tag.
func ValidTag(s string) bool { return anchoredTag.MatchString(s) }

// Parse parses a reference as image lists and bundles write it. The first
// component is a registry host when it has a dot or a port or is
// localhost (as Docker reads references); without a tag or a digest the
// reference means :latest.
func Parse(s string) (Ref, error) {
	r, err := parse(s, true)
	if err == nil && r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, err
}

// ParseLocal parses a reference to a repository of this registry, as pins
// write it: repo:tag, repo@digest, or repo:tag@digest, where the digest
// wins (Tag is cleared). A tag or a digest is required.
func ParseLocal(s string) (Ref, error) {
	r, err := parse(s, false)
	if err != nil {
		return Ref{}, err
	}
	if r.Tag == "" && r.Digest == "" {
		return Ref{}, fmt.Errorf("reference %q needs a :tag or an @digest", s)
	}
	if r.Digest != "" {
		r.Tag = ""
	}
	return r, nil
}

// parse checks s against the grammar, then splits it; withHost reads a
// leading registry host.
func parse(s string, withHost bool) (Ref, error) {
	parsed, err := distref.Parse(s)
	if err != nil {
		return Ref{}, explain(s, err)
	}
	var r Ref
	name := s
	if named, ok := parsed.(distref.Named); ok {
		name = named.Name()
	}
	if t, ok := parsed.(distref.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := parsed.(distref.Digested); ok {
		r.Digest = d.Digest()
	}
	if first, rest, ok := strings.Cut(name, "/"); ok && withHost && isHost(first) {
		r.Host, name = first, rest
	}
	if !rules.ValidRepository(name) {
		return Ref{}, fmt.Errorf("reference %q: %q is not a valid repository name", s, name)
	}
	r.Repo = name
	return r, nil
}

// isHost reports whether a reference's first component names a registry.
func isHost(c string) bool { return strings.ContainsAny(c, ".:") || c == "localhost" }

// explain says which part of s the grammar refused.
func explain(s string, err error) error {
	name, dgst, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if _, derr := digest.Parse(dgst); derr != nil {
			return fmt.Errorf("reference %q: bad digest: %v", s, derr)
		}
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if tag := name[i+1:]; !ValidTag(tag) {
			return fmt.Errorf("reference %q: bad tag %q", s, tag)
		}
		name = name[:i]
	}
	if first, rest, ok := strings.Cut(name, "/"); ok && isHost(first) && rules.ValidRepository(rest) {
		return fmt.Errorf("reference %q: registry host %q: %v", s, first, err)
	}
	return fmt.Errorf("reference %q: %q is not a valid repository name", s, name)
}
