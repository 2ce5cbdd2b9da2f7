package rules

import "strings"

// Reverse maps an upstream repository (registry host and path, as an image
// reference names it) to the local repository whose rule fetches it, e.g.
// ("mcr.microsoft.com", "oss/kubernetes/pause") to
// "aks-managed-repository/oss/kubernetes/pause" under aks-managed-mcr. A
// local repository only counts if Match maps it back to the same upstream
// (a static rule can shadow a wildcard). Static rules are tried first.
func (s *Set) Reverse(host, upstreamRepo string) (string, Rule, bool) {
	rs := s.Rules()
	for _, static := range []bool{true, false} {
		for _, r := range rs {
			if r.Wildcard() == static || !strings.EqualFold(r.UpstreamHost(), host) {
				continue
			}
			local, ok := r.reverse(upstreamRepo)
			if !ok || !ValidRepository(local) {
				continue
			}
			if m, ok := s.Match(local); ok && m.Rule.Name == r.Name && m.Repository == upstreamRepo {
				return local, r, true
			}
		}
	}
	return "", Rule{}, false
}

func (r Rule) reverse(upstreamRepo string) (string, bool) {
	sp := r.sourcePrefix()
	if !r.Wildcard() {
		return r.Target, upstreamRepo == sp
	}
	rest := upstreamRepo
	if sp != "" {
		if !strings.HasPrefix(upstreamRepo, sp+"/") {
			return "", false
		}
		rest = upstreamRepo[len(sp)+1:]
	}
	if tp := r.targetPrefix(); tp != "" {
		return tp + "/" + rest, true
	}
	return rest, true
}
