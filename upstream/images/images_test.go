package images

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"mcr.microsoft.com/oss/kubernetes/pause:3.10\n", []string{"mcr.microsoft.com/oss/kubernetes/pause:3.10"}, false},
		{"# comment\n\n  a/b:1  # trailing\r\nc@sha256:" + strings.Repeat("a", 64) + "\n", []string{"a/b:1", "c@sha256:" + strings.Repeat("a", 64)}, false},
		{"a/b:1 c/d:2\n", nil, true},
		{"", nil, false},
	}
	for _, c := range cases {
		got, err := ParseList(strings.NewReader(c.in))
		if (err != nil) != c.wantErr || (!c.wantErr && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("ParseList(%q) = %q, %v", c.in, got, err)
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	t.Parallel()
	ps, err := ParsePlatforms("linux/amd64, linux/arm64/v8")
	if err != nil || len(ps) != 2 || ps[1].Variant != "v8" || ps[0].Architecture != "amd64" {
		t.Fatalf("%+v %v", ps, err)
	}
	if ps, err := ParsePlatforms(""); err != nil || ps != nil {
		t.Fatalf("empty: %+v %v", ps, err)
	}
	if _, err := ParsePlatforms("linux"); err == nil {
		t.Fatal("os without arch accepted")
	}
}
