package imagetool

import (
	"fmt"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/rules"
)

// localRepo maps a reference to the local repository that serves it: a
// reference without a host (or naming airlock itself) is local already;
// one with an upstream host goes through the cache rule that fetches it.
func localRepo(r reference.Ref, set *rules.Set, self string) (string, error) {
	if r.Host == "" || r.Host == self {
		return r.Repo, nil
	}
	if set == nil {
		return "", fmt.Errorf("registry %s needs cache rules to map it: give --config FILE, or list local references (aks-managed-repository/...)", r.Host)
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
		r, err := reference.Parse(s)
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
