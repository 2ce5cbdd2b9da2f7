package manifest

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

var (
	dA = digest.FromString("a").String()
	dB = digest.FromString("b").String()
	dC = digest.FromString("c").String()
)

func TestParse(t *testing.T) {
	t.Parallel()
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + dA + `","size":1},
		"layers":[{"digest":"` + dB + `","size":2},
		          {"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"` + dC + `","size":3,"urls":["https://x"]}],
		"subject":{"digest":"` + dA + `","size":1},"annotations":{"k":"v"}}`
	m, err := Parse([]byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != "application/vnd.oci.image.config.v1+json" || m.SubjectDigest().String() != dA || m.Annotations["k"] != "v" || m.SchemaVersion != 2 {
		t.Fatalf("parsed %+v", m)
	}
	if b := m.Blobs(); len(b) != 2 || b[0].Digest.String() != dA || b[1].Digest.String() != dB || b[1].Size != 2 {
		t.Fatalf("blobs %+v (the foreign layer is not one)", b)
	}
	if r := m.Refs(); len(r) != 2 || len(m.Layers) != 2 {
		t.Fatalf("refs %v layers %d", r, len(m.Layers))
	}
	idx, err := Parse([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"`+dB+`","size":5,"platform":{"os":"linux","architecture":"amd64"}}]}`), MediaTypeOCIIndex)
	if err != nil || idx.MediaType != MediaTypeOCIIndex || idx.Config != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Platform.OS != "linux" {
		t.Fatalf("index %+v %v", idx, err)
	}
	if r := idx.Refs(); len(r) != 1 || r[0].String() != dB || idx.SubjectDigest() != "" {
		t.Fatalf("index refs %v", r)
	}
	// The empty config of an artifact is its artifact type, as the
	// referrers API lists it; a declared artifactType wins.
	for _, c := range []struct{ body, want string }{
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + dA + `","size":2}}`, "application/vnd.oci.empty.v1+json"},
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/b","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + dA + `","size":2}}`, "a/b"},
		{`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"x/y","digest":"` + dA + `","size":2}}`, ""},
	} {
		if m, err := Parse([]byte(c.body), ""); err != nil || m.ArtifactType != c.want {
			t.Errorf("%s: artifactType %q, %v; want %q", c.body, m.ArtifactType, err, c.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ body, want string }{
		{`not json`, "manifest is not valid JSON"},
		{`{"layers":[{"digest":"sha256:short"}]}`, `layer digest "sha256:short"`},
		{`{"manifests":[{"digest":"md5:x"}]}`, `index entry digest "md5:x"`},
		{`{"config":{"digest":""}}`, `config digest ""`},
		{`{"subject":{"digest":"sha256:zz"}}`, `subject digest "sha256:zz"`},
		{`{"layers":{"digest":"` + dA + `"}}`, "manifest is not valid JSON"},
	} {
		if _, err := Parse([]byte(c.body), ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}

func TestParsePushed(t *testing.T) {
	t.Parallel()
	img := `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + dA + `","size":1},"layers":[]}`
	for _, c := range []struct {
		body, contentType, wantType, wantErr string
	}{
		{img, "", MediaTypeOCIManifest, ""},
		{img, MediaTypeOCIManifest, MediaTypeOCIManifest, ""},
		{`{"schemaVersion":2,"manifests":[]}`, "", MediaTypeOCIIndex, ""},
		{`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`, MediaTypeDockerList, MediaTypeDockerList, ""},
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`, MediaTypeDockerManifest, "", `mediaType "application/vnd.oci.image.manifest.v1+json" differs from Content-Type`},
		{`{"schemaVersion":1,"manifests":[]}`, "", "", "schemaVersion must be 2"},
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`, "", "", "an image manifest needs a config"},
		{`{"schemaVersion":2,"mediaType":"text/plain"}`, "", "", `unsupported manifest media type "text/plain"`},
		{`{`, "", "", "not valid JSON"},
	} {
		m, err := ParsePushed([]byte(c.body), c.contentType)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s (%s): %v, want %q", c.body, c.contentType, err, c.wantErr)
			}
			continue
		}
		if err != nil || m.MediaType != c.wantType {
			t.Errorf("%s (%s): %q, %v; want %q", c.body, c.contentType, m.MediaType, err, c.wantType)
		}
	}
}
