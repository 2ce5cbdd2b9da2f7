package reference

import (
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

var d = digest.FromString("x")

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want Ref
	}{
		{"mcr.microsoft.com/oss/kubernetes/pause:3.10", Ref{Host: "mcr.microsoft.com", Repo: "oss/kubernetes/pause", Tag: "3.10"}},
		{"mcr.microsoft.com/oss/kubernetes/pause", Ref{Host: "mcr.microsoft.com", Repo: "oss/kubernetes/pause", Tag: "latest"}},
		{"127.0.0.1:5000/team/app@" + d.String(), Ref{Host: "127.0.0.1:5000", Repo: "team/app", Digest: d}},
		{"localhost/app:v1@" + d.String(), Ref{Host: "localhost", Repo: "app", Tag: "v1", Digest: d}},
		{"aks-managed-repository/oss/kubernetes/pause:3.10", Ref{Repo: "aks-managed-repository/oss/kubernetes/pause", Tag: "3.10"}},
		{"library/alpine:_x", Ref{Repo: "library/alpine", Tag: "_x"}},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if r, _ := Parse("localhost/app:v1@" + d.String()); r.String() != "localhost/app:v1@"+d.String() || r.Identifier() != d.String() || r.In("x") != "x@"+d.String() {
		t.Errorf("String %q Identifier %q In %q", r.String(), r.Identifier(), r.In("x"))
	}
	if r, _ := Parse("a/b:1"); r.Identifier() != "1" || r.In("c/b") != "c/b:1" {
		t.Errorf("Identifier %q In %q", r.Identifier(), r.In("c/b"))
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a/b:-x":                          `reference "a/b:-x": bad tag "-x"`,
		"a/b:" + strings.Repeat("x", 129): `bad tag`,
		"a/b@sha256:nothex":               `bad digest`,
		"Bad/Repo:1":                      `"Bad/Repo" is not a valid repository name`,
		"a//b:1":                          `"a//b" is not a valid repository name`,
		"mcr.microsoft.com/A:1":           `"mcr.microsoft.com/A" is not a valid repository name`,
		"":                                `"" is not a valid repository name`,
		"mcr.microsoft.com:x/a:1":         `registry host "mcr.microsoft.com:x"`,
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want %q", in, err, want)
		}
	}
}

// Pins name local repositories: a first component with a dot is part of
// the repository, a tag or digest is required, and the digest wins.
func TestParseLocal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Ref{
		"aks-managed-repository/oss/kubernetes/pause:3.10": {Repo: "aks-managed-repository/oss/kubernetes/pause", Tag: "3.10"},
		"team.one/app:v1":      {Repo: "team.one/app", Tag: "v1"},
		"app:v1@" + d.String(): {Repo: "app", Digest: d},
	} {
		if got, err := ParseLocal(in); err != nil || got != want {
			t.Errorf("ParseLocal(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseLocal("aks-managed-repository/oss/kubernetes/pause"); err == nil || err.Error() != `reference "aks-managed-repository/oss/kubernetes/pause" needs a :tag or an @digest` {
		t.Errorf("no tag: %v", err)
	}
	if _, err := ParseLocal("Bad/Repo:1"); err == nil || !strings.Contains(err.Error(), "not a valid repository name") {
		t.Errorf("uppercase: %v", err)
	}
}

func TestValidTag(t *testing.T) {
	t.Parallel()
	for tag, ok := range map[string]bool{
		"3.10": true, "v1.31.3": true, "latest": true, "_x": true, "A-b_c.d": true,
		"": false, ".x": false, "-x": false, "a:b": false, "a/b": false, "a b": false, "a\n": false,
		strings.Repeat("a", 128): true, strings.Repeat("a", 129): false,
	} {
		if ValidTag(tag) != ok {
			t.Errorf("ValidTag(%q) = %v, want %v", tag, !ok, ok)
		}
	}
}

// specTag is the distribution spec's tag grammar.
var specTag = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"mcr.microsoft.com/oss/kubernetes/pause:3.10", "a/b@" + d.String(), "localhost:5000/x:y@" + d.String(), "A/b:-x", "a..b", ":", "@", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidTag(s), specTag.MatchString(s); got != want {
			t.Fatalf("ValidTag(%q) = %v, the spec says %v", s, got, want)
		}
		r, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v; its String %q parses to %+v, %v", s, r, r.String(), again, err)
		}
		if r.Tag != "" && !ValidTag(r.Tag) {
			t.Fatalf("Parse(%q) accepted tag %q", s, r.Tag)
		}
	})
}
