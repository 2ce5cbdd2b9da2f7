package rules

import (
	"regexp"
	"testing"
)

// pathComponent is the distribution spec's grammar, the oracle for the
// hand-written matcher.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

func FuzzValidComponent(f *testing.F) {
	for _, s := range []string{"a", "a.b", "a..b", "a__b", "a___b", "a--b", "a-_b", "_a", "a_", "a.", "A", "0", "a/b", "", "a-b-c", "a.b_c__d---e", "a._b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validComponent(s), pathComponent.MatchString(s); got != want {
			t.Fatalf("validComponent(%q) = %v, grammar says %v", s, got, want)
		}
	})
}
