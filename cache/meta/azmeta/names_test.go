package azmeta

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Registry names stay readable; everything else is escaped.
func TestNameReadable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{tagName("aks-managed-repository/oss/kubernetes/pause", "3.10"), "meta/t/aks-managed-repository/oss/kubernetes/pause!3.10!"},
		{repoName("a_b/c.d"), "meta/r/a_b/c.d!"},
		{tagName("r", "v1+build"), "meta/t/r!v1$2bbuild!"},
		{pinName("r:v1", "cluster/a"), "meta/p/r@3av1!cluster/a!"},
		{pinName("r@sha256:ab", ""), "meta/p/r@40sha256@3aab!!"},
		{tagName("r", "ü"), "meta/t/r!~c3~bc!"},
	} {
		if c.got != c.want {
			t.Errorf("name %q, want %q", c.got, c.want)
		}
	}
}

// Every byte string survives the code, and the code keeps the byte order
// of single parts and of tuples of parts: the order Azure lists names in
// is the order Catalog and Pins promise.
func TestNameOrderPreserving(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("-./09AZ_az!$@^`~\x00\x7f\xff:+ ")
	randomString := func() string {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		return string(b)
	}
	type pair struct{ a, b string }
	var pairs []pair
	for range 3000 {
		pairs = append(pairs, pair{randomString(), randomString()})
	}
	for _, p := range pairs {
		parts, err := parse(kPin, pinName(p.a, p.b))
		if err != nil || len(parts) != 2 || parts[0] != p.a || parts[1] != p.b {
			t.Fatalf("round trip of (%q, %q): %q %v", p.a, p.b, parts, err)
		}
	}
	byBytes := slices.Clone(pairs)
	slices.SortFunc(byBytes, func(x, y pair) int {
		if c := strings.Compare(x.a, y.a); c != 0 {
			return c
		}
		return strings.Compare(x.b, y.b)
	})
	byName := slices.Clone(pairs)
	slices.SortFunc(byName, func(x, y pair) int { return strings.Compare(pinName(x.a, x.b), pinName(y.a, y.b)) })
	for i := range byBytes {
		if byBytes[i] != byName[i] {
			t.Fatalf("position %d: by bytes %q, by encoded name %q", i, byBytes[i], byName[i])
		}
	}
}

// A repository's prefix holds its own records only, not those of a
// repository whose name extends it, and parts cannot run into each other.
func TestNamePrefixes(t *testing.T) {
	t.Parallel()
	pfx := repoPrefix(kTag, "r")
	for _, other := range []string{tagName("r/sub", "v1"), tagName("rr", "v1"), tagName("r-", "v1")} {
		if strings.HasPrefix(other, pfx) {
			t.Errorf("%s is under %s", other, pfx)
		}
	}
	if !strings.HasPrefix(tagName("r", "v1"), pfx) {
		t.Error("r's tag is not under r's prefix")
	}
	if tagName("a/b", "v1") == tagName("a", "b/v1") {
		t.Error("a/b:v1 and a:b/v1 share a name")
	}
	for _, bad := range []string{"meta/t/abc", "meta/t/a!$zz!", "meta/t/a!$2", "meta/t/a!$41!", "meta/t/a!@21!", "meta/b/a!"} {
		if parts, err := parse(kTag, bad); err == nil {
			t.Errorf("parse(%q) = %q, want an error", bad, parts)
		}
	}
}
