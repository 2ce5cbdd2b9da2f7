package rules

import (
	"strings"
	"testing"
)

// FuzzRules: validation never panics; a rule it accepts matches exactly
// the repositories it covers, mapping each to a repository on its
// upstream host made of valid components.
func FuzzRules(f *testing.F) {
	for _, s := range [][4]string{
		{"aks-managed-mcr", "mcr.microsoft.com/*", "aks-managed-repository/*", "aks-managed-repository/oss/kubernetes/pause"},
		{"dotnet-rule", "mcr.microsoft.com/dotnet/*", "dotnet/*", "dotnet/runtime"},
		{"all-of-it", "mcr.microsoft.com/*", "*", "x"},
		{"static-one", "mcr.microsoft.com/dotnet/runtime", "runtime", "runtime"},
		{"bad", "dotnet/*", "dotnet/*", "dotnet/x"},
		{"x*y", "mcr.microsoft.com:443/a*", "a/*/b", "a"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, name, source, target, repo string) {
		r := Rule{Name: name, Source: source, Target: target}
		s, err := NewSet([]Rule{r})
		if err != nil {
			return
		}
		m, ok := s.Match(repo)
		if !ValidRepository(repo) {
			return
		}
		if ok != r.Covers(repo) {
			t.Fatalf("rule %+v: Match(%q)=%v but Covers=%v", r, repo, ok, r.Covers(repo))
		}
		if !ok {
			return
		}
		if m.Host != r.UpstreamHost() || m.Rule.Name != name {
			t.Fatalf("rule %+v: match %+v", r, m)
		}
		for _, c := range strings.Split(m.Repository, "/") {
			if !pathComponent.MatchString(c) {
				t.Fatalf("rule %+v maps %q to %q", r, repo, m.Repository)
			}
		}
	})
}
