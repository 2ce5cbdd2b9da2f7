package manifest

import (
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParseManifest: the parser and the push check never panic, whatever
// they accept names only valid digests, and Refs loses nothing.
func FuzzParseManifest(f *testing.F) {
	d := digest.FromString("x").String()
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d + `","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + d + `","size":1}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d + `","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`,
		`{"schemaVersion":2,"config":{"digest":"` + d + `"},"layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"` + d + `","urls":["https://x"]}],"subject":{"digest":"` + d + `"},"artifactType":"a/b"}`,
		`{"schemaVersion":1}`, `{"layers":[{"digest":"sha256:zz"}]}`, `[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s), "application/vnd.oci.image.manifest.v1+json")
	}
	f.Fuzz(func(t *testing.T, body []byte, mediaType string) {
		m, err := Parse(body, mediaType)
		if err != nil {
			return
		}
		var all []digest.Digest
		for _, ds := range [][]v1.Descriptor{m.Manifests, m.Layers, m.Blobs()} {
			for _, x := range ds {
				all = append(all, x.Digest)
			}
		}
		if s := m.SubjectDigest(); s != "" {
			all = append(all, s)
		}
		for _, x := range all {
			if x.Validate() != nil {
				t.Fatalf("accepted an invalid digest %q", x)
			}
		}
		if len(m.Refs()) != len(m.Manifests)+len(m.Blobs()) {
			t.Fatal("refs lost entries")
		}
		if p, err := ParsePushed(body, mediaType); err == nil && p.SchemaVersion != 2 {
			t.Fatalf("pushable with schemaVersion %d", p.SchemaVersion)
		}
	})
}
