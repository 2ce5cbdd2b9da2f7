package imagetool

import (
	"fmt"
	"strings"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/rules"
	"github.com/opencontainers/go-digest"
)

// imageRef is an image reference as written in a list or a bundle:
// [host/]repository[:tag][@digest].
type imageRef struct {
	Host   string // "" when the reference names a local repository
	Repo   string
	Tag    string
	Digest digest.Digest
}

func (r imageRef) String() string {
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

// ref is the tag, or the digest when there is one.
func (r imageRef) ref() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// parseImageRef parses a reference; without a tag or digest it means
// :latest. The first component is a registry host when it has a dot or a
// port or is localhost.
func parseImageRef(s string) (imageRef, error) {
	var r imageRef
	name := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		d, err := digest.Parse(s[i+1:])
		if err != nil {
			return r, fmt.Errorf("reference %q: bad digest: %v", s, err)
		}
		r.Digest, name = d, s[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		r.Tag, name = name[i+1:], name[:i]
		if !validTag(r.Tag) {
			return r, fmt.Errorf("reference %q: bad tag %q", s, r.Tag)
		}
	}
	if first, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		r.Host, name = first, rest
	}
	if !rules.ValidRepository(name) {
		return r, fmt.Errorf("reference %q: %q is not a valid repository name", s, name)
	}
	r.Repo = name
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

func validTag(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i, c := range []byte(t) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// localRepo maps a reference to the local repository that serves it: a
// reference without a host (or naming airlock itself) is local already;
// one with an upstream host goes through the cache rule that fetches it.
func localRepo(r imageRef, set *rules.Set, self string) (string, error) {
	if r.Host == "" || r.Host == self {
		return r.Repo, nil
	}
	if set == nil {
		return "", fmt.Errorf("%s names registry %s: give --config so that its cache rules map it", r, r.Host)
	}
	local, _, ok := set.Reverse(r.Host, r.Repo)
	if !ok {
		return "", fmt.Errorf("no cache rule fetches %s/%s", r.Host, r.Repo)
	}
	return local, nil
}

// importTarget maps a bundle's reference name: under the rule that fetches
// it, as cached content; otherwise (or with asPushed) as pushed content in
// the repository named without its host, which must not be under a rule.
func importTarget(set *rules.Set, asPushed bool) bundle.Mapper {
	return func(s string) (bundle.Target, error) {
		r, err := parseImageRef(s)
		if err != nil {
			return bundle.Target{}, err
		}
		t := bundle.Target{Repo: r.Repo, Tag: r.Tag, Origin: meta.OriginPush}
		if !asPushed {
			if r.Host != "" {
				if local, _, ok := set.Reverse(r.Host, r.Repo); ok {
					t.Repo, t.Origin = local, meta.OriginCache
					return t, nil
				}
			} else if _, ok := set.Match(r.Repo); ok {
				t.Origin = meta.OriginCache
				return t, nil
			}
		}
		if m, ok := set.Match(t.Repo); ok {
			return bundle.Target{}, fmt.Errorf("repository %s is a cache of %s/%s (rule %s): it cannot hold pushed content", t.Repo, m.Host, m.Repository, m.Rule.Name)
		}
		return t, nil
	}
}
