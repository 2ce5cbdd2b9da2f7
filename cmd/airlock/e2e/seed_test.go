package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Media types of the seeded content.
const (
	mtOCIManifest  = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex     = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig    = "application/vnd.oci.image.config.v1+json"
	mtOCILayer     = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtOCIEmpty     = "application/vnd.oci.empty.v1+json"
	mtDockerMan    = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerConfig = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	refNameAnno    = "org.opencontainers.image.ref.name"
)

// desc is an OCI descriptor, as written into manifests.
type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     *platform         `json:"platform,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// seeded is an OCI layout being written, and what the read-only
// conformance run is told exists: the data kinds the suite generates when
// it can push (image, index, nested index, artifact, artifacts with a
// subject, an index with a subject, no layers, an empty blob, custom fields,
// Docker schema 2).
type seeded struct {
	t         *testing.T
	dir       string
	top       []desc // index.json entries
	tags      []string
	manifests []string
	blobs     []string
	referrers []string // subjects to ask the referrers API about
}

func (s *seeded) write(b []byte) string {
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(s.dir, "blobs", "sha256", hex.EncodeToString(sum[:])), b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *seeded) blob(mt string, b []byte) desc {
	d := desc{MediaType: mt, Digest: s.write(b), Size: int64(len(b))}
	s.blobs = append(s.blobs, d.Digest)
	return d
}

// manifest stores a manifest or index; tag "" leaves it untagged, top
// lists it in index.json.
func (s *seeded) manifest(mt string, v map[string]any, tag string, top bool) desc {
	v["schemaVersion"] = 2
	v["mediaType"] = mt
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	d := desc{MediaType: mt, Digest: s.write(b), Size: int64(len(b))}
	if at, ok := v["artifactType"].(string); ok {
		d.ArtifactType = at
	}
	s.manifests = append(s.manifests, d.Digest)
	if top {
		e := d
		if tag != "" {
			e.Annotations = map[string]string{refNameAnno: tag}
			s.tags = append(s.tags, tag)
		}
		s.top = append(s.top, e)
	}
	return d
}

// layer returns a gzip'd tar holding one file, and its uncompressed digest.
func (s *seeded) layer(mt, name, content string) (desc, string) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		s.t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	diff := sha256.Sum256(tb.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb.Bytes())
	zw.Close()
	return s.blob(mt, gz.Bytes()), "sha256:" + hex.EncodeToString(diff[:])
}

func (s *seeded) config(mt, arch string, diffIDs ...string) desc {
	b, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux",
		"config": map[string]any{"Cmd": []string{"/hello"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": append([]string{}, diffIDs...)},
	})
	return s.blob(mt, b)
}

// seedLayout writes an OCI layout of every data kind into dir (which
// `airlock mar --from` serves as the repository named by dir's path).
func seedLayout(t *testing.T, dir string) *seeded {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &seeded{t: t, dir: dir}
	l1, diff1 := s.layer(mtOCILayer, "hello", "hello from the seeded layout\n")
	l2, diff2 := s.layer(mtOCILayer, "etc/motd", "network isolated\n")
	image := s.manifest(mtOCIManifest, map[string]any{
		"config": s.config(mtOCIConfig, "amd64", diff1, diff2), "layers": []desc{l1, l2},
		"annotations":            map[string]string{"org.example.custom": "custom annotation"},
		"org.example.extraField": map[string]any{"custom": true}, // unknown fields are kept byte for byte
	}, "image", true)
	image.Platform = &platform{Architecture: "amd64", OS: "linux"}
	arm := s.manifest(mtOCIManifest, map[string]any{
		"config": s.config(mtOCIConfig, "arm64", diff2), "layers": []desc{l2},
	}, "image-arm64", true)
	arm.Platform = &platform{Architecture: "arm64", OS: "linux"}
	index := s.manifest(mtOCIIndex, map[string]any{"manifests": []desc{image, arm}}, "index", true)
	s.manifest(mtOCIIndex, map[string]any{"manifests": []desc{index, image}}, "index-of-index", true)

	empty := s.blob(mtOCIEmpty, []byte("{}"))
	noLayers := s.manifest(mtOCIManifest, map[string]any{"config": s.config(mtOCIConfig, "amd64"), "layers": []desc{}}, "no-layers", true)
	zero := s.blob("application/vnd.oci.image.layer.v1.tar", nil) // the empty blob
	s.manifest(mtOCIManifest, map[string]any{"config": s.config(mtOCIConfig, "amd64", zero.Digest), "layers": []desc{zero}}, "empty-blob", true)
	data := s.blob("application/vnd.example.data.v1+json", []byte(`{"example":"artifact payload"}`))
	s.manifest(mtOCIManifest, map[string]any{
		"artifactType": "application/vnd.example.data.v1", "config": empty, "layers": []desc{data},
	}, "artifact", true)
	dl, ddiff := s.layer(mtDockerLayer, "docker", "docker schema 2\n")
	s.manifest(mtDockerMan, map[string]any{"config": s.config(mtDockerConfig, "amd64", ddiff), "layers": []desc{dl}}, "docker", true)

	// Referrers: two artifacts about the image, one artifact index about
	// the index; the API is also asked about a manifest nobody refers to.
	for _, at := range []string{"application/vnd.example.signature.v1", "application/vnd.example.sbom.v1"} {
		payload := s.blob(at+"+json", []byte(`{"about":"`+image.Digest+`"}`))
		s.manifest(mtOCIManifest, map[string]any{
			"artifactType": at, "config": empty, "layers": []desc{payload}, "subject": image,
			"annotations": map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
		}, "", true)
	}
	s.manifest(mtOCIIndex, map[string]any{
		"artifactType": "application/vnd.example.attestations.v1", "manifests": []desc{}, "subject": index,
	}, "", true)
	s.referrers = []string{image.Digest, index.Digest, noLayers.Digest}

	b, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": s.top})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}
