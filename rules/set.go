package rules

import (
	"sort"
	"strings"
)

// Set is a validated, immutable collection of rules. The zero value is not
// usable; build one with NewSet. Methods that change it return a new Set.
type Set struct {
	byName   map[string]Rule
	static   map[string]string // target repository -> rule name
	wildcard []Rule            // sorted by target prefix length, longest first
}

// Match is the result of mapping a local repository through a rule.
type Match struct {
	Rule Rule
	// Host is the upstream registry host, e.g. "mcr.microsoft.com".
	Host string
	// Repository is the upstream repository path without the host.
	Repository string
}

// NewSet validates rules individually and against each other.
func NewSet(rs []Rule) (*Set, error) {
	s := &Set{byName: map[string]Rule{}, static: map[string]string{}}
	for _, r := range rs {
		if err := s.add(r); err != nil {
			return nil, err
		}
	}
	s.sortWildcards()
	return s, nil
}

func (s *Set) add(r Rule) error {
	if err := Validate(r); err != nil {
		return err
	}
	if len(s.byName) >= MaxRules {
		return invalid(r.Name, CodeTooMany, "a registry holds at most %d cache rules", MaxRules)
	}
	if _, dup := s.byName[strings.ToLower(r.Name)]; dup {
		return invalid(r.Name, CodeDuplicateName, "a rule with this name already exists")
	}
	if r.Wildcard() {
		p := r.targetPrefix()
		for _, w := range s.wildcard {
			q := w.targetPrefix()
			if nsContains(p, q) || nsContains(q, p) {
				return invalid(r.Name, CodeWildcardOverlap, "target %q overlaps target %q of rule %q", r.Target, w.Target, w.Name)
			}
		}
		s.wildcard = append(s.wildcard, r)
	} else {
		if other, dup := s.static[r.Target]; dup {
			return invalid(r.Name, CodeDuplicateTarget, "rule %q already maps target %q", other, r.Target)
		}
		s.static[r.Target] = r.Name
	}
	s.byName[strings.ToLower(r.Name)] = r
	return nil
}

// nsContains reports whether namespace ns ("" = everything) contains repo.
func nsContains(ns, repo string) bool {
	return ns == "" || repo == ns || strings.HasPrefix(repo, ns+"/")
}

func (s *Set) sortWildcards() {
	sort.SliceStable(s.wildcard, func(i, j int) bool {
		return len(s.wildcard[i].targetPrefix()) > len(s.wildcard[j].targetPrefix())
	})
}

// Len is the number of rules.
func (s *Set) Len() int { return len(s.byName) }

// Rules returns the rules sorted by name.
func (s *Set) Rules() []Rule {
	out := make([]Rule, 0, len(s.byName))
	for _, r := range s.byName {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns the named rule (names are case-insensitive, as in ACR).
func (s *Set) Get(name string) (Rule, bool) {
	r, ok := s.byName[strings.ToLower(name)]
	return r, ok
}

// Match maps a local repository to its upstream. A static rule wins over a
// wildcard rule; wildcard targets never overlap, so at most one matches.
func (s *Set) Match(repo string) (Match, bool) {
	if name, ok := s.static[repo]; ok {
		r := s.byName[strings.ToLower(name)]
		return Match{Rule: r, Host: r.UpstreamHost(), Repository: r.sourcePrefix()}, true
	}
	for _, r := range s.wildcard {
		p := r.targetPrefix()
		if !nsContains(p, repo) || repo == p {
			continue
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(repo, p), "/")
		up := rest
		if sp := r.sourcePrefix(); sp != "" {
			up = sp + "/" + rest
		}
		return Match{Rule: r, Host: r.UpstreamHost(), Repository: up}, true
	}
	return Match{}, false
}

// Covers reports whether a rule's target would match repo.
func (r Rule) Covers(repo string) bool {
	if !r.Wildcard() {
		return r.Target == repo
	}
	p := r.targetPrefix()
	return nsContains(p, repo) && repo != p
}

// With returns a new Set with r added.
func (s *Set) With(r Rule) (*Set, error) {
	next, err := NewSet(append(s.Rules(), r))
	if err != nil {
		return nil, err
	}
	return next, nil
}

// Without returns a new Set without the named rule. It returns a
// *ValidationError wrapping ErrNotFound if there is no such rule.
func (s *Set) Without(name string) (*Set, error) {
	if _, ok := s.Get(name); !ok {
		return nil, invalid(name, CodeNotFound, "no cache rule with this name")
	}
	keep := make([]Rule, 0, s.Len())
	for _, r := range s.Rules() {
		if !strings.EqualFold(r.Name, name) {
			keep = append(keep, r)
		}
	}
	return NewSet(keep)
}

// Update returns a new Set where the named rule's credential set is
// replaced, and its tag TTL and tag listing when r sets them. Source and target are immutable, as in ACR: an update that
// changes them is refused with CodeImmutable.
func (s *Set) Update(r Rule) (*Set, error) {
	old, ok := s.Get(r.Name)
	if !ok {
		return nil, invalid(r.Name, CodeNotFound, "no cache rule with this name")
	}
	if (r.Source != "" && r.Source != old.Source) || (r.Target != "" && r.Target != old.Target) {
		return nil, invalid(r.Name, CodeImmutable, "source and target cannot be changed after creation; only the credential set can")
	}
	old.CredentialSet = r.CredentialSet
	if r.TagTTL != 0 {
		old.TagTTL = r.TagTTL
	}
	if r.TagList != "" {
		old.TagList = r.TagList
	}
	keep := make([]Rule, 0, s.Len())
	for _, x := range s.Rules() {
		if strings.EqualFold(x.Name, r.Name) {
			x = old
		}
		keep = append(keep, x)
	}
	return NewSet(keep)
}

// CheckExisting refuses a rule whose target would capture an existing
// repository that holds pushed (non-cached) content.
func CheckExisting(r Rule, pushedRepos []string) error {
	for _, repo := range pushedRepos {
		if r.Covers(repo) {
			return invalid(r.Name, CodeExistingRepoMatch, "target %q matches existing repository %q", r.Target, repo)
		}
	}
	return nil
}
