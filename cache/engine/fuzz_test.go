package engine

import (
	"regexp"
	"testing"

	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/rules"
	"github.com/opencontainers/go-digest"
)

// The distribution spec's grammar, as regular expressions.
var (
	specName = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTag  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// FuzzReference: the name and tag checks agree with the spec's grammar
// (names up to 255 bytes), and a reference is never both a tag and a
// digest.
func FuzzReference(f *testing.F) {
	for _, s := range [][2]string{{"library/alpine", "3.20"}, {"a/../b", ".."}, {"A/b", "-x"}, {"a__b/c--d", "_x"},
		{"a/", "sha256:" + digest.FromString("x").Encoded()}, {"a..b", "v1.0.0-rc.1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, ref string) {
		if got, want := rules.ValidRepository(name), len(name) <= 255 && specName.MatchString(name); got != want {
			t.Fatalf("ValidRepository(%q) = %v, the spec says %v", name, got, want)
		}
		if got, want := reference.ValidTag(ref), specTag.MatchString(ref); got != want {
			t.Fatalf("reference.ValidTag(%q) = %v, the spec says %v", ref, got, want)
		}
		if _, err := digest.Parse(ref); err == nil && reference.ValidTag(ref) {
			t.Fatalf("%q is both a digest and a tag", ref)
		}
	})
}
