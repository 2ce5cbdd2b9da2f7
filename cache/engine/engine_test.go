package engine

import (
	"strings"
	"testing"
)

func TestValidTag(t *testing.T) {
	t.Parallel()
	for tag, ok := range map[string]bool{
		"3.10": true, "v1.31.3": true, "latest": true, "_x": true, "A-b_c.d": true,
		"": false, ".x": false, "-x": false, "a:b": false, "a/b": false, "a b": false,
		strings.Repeat("a", 128): true, strings.Repeat("a", 129): false,
	} {
		if ValidTag(tag) != ok {
			t.Errorf("ValidTag(%q) = %v, want %v", tag, !ok, ok)
		}
	}
}

func TestParseManifest(t *testing.T) {
	t.Parallel()
	d := "sha256:" + strings.Repeat("a", 64)
	p, err := parseManifest([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+d+`","size":1},
		"layers":[{"digest":"`+d+`","size":1}],"subject":{"digest":"`+d+`","size":1}}`), "")
	if err != nil || len(p.Blobs) != 2 || p.Subject.String() != d || p.ArtifactType != "application/vnd.oci.image.config.v1+json" {
		t.Fatalf("parsed %+v %v", p, err)
	}
	for _, bad := range []string{`not json`, `{"layers":[{"digest":"sha256:short"}]}`, `{"manifests":[{"digest":"md5:x"}]}`} {
		if _, err := parseManifest([]byte(bad), ""); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
