package catalog

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/airlock/airlock/deploy/aks"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// assembler turns image definitions and generated layers into configs,
// manifests and indexes in a Builder.
type assembler struct {
	b       *Builder
	seed    uint64
	blobDir string
	layers  map[string]layerResult
}

// marshal encodes manifests and configs: Docker ones indented with three
// spaces (as the Docker tooling writes them), OCI ones compact.
func marshal(v any, docker bool) ([]byte, error) {
	if docker {
		return json.MarshalIndent(v, "", "   ")
	}
	return json.Marshal(v)
}

func (a *assembler) image(img imageDef) error {
	var children []v1.Descriptor
	for _, pd := range img.platforms {
		desc, err := a.platform(img, pd)
		if err != nil {
			return err
		}
		if !img.index {
			return a.referrers(img, desc)
		}
		p := pd.platform
		desc.Platform = &p
		children = append(children, desc)
	}
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children, ArtifactType: img.artifactType}
	if img.docker {
		im.MediaType = types.DockerManifestList
	}
	raw, err := marshal(im, img.docker)
	if err != nil {
		return err
	}
	d, err := a.b.AddManifest(img.repo, im.MediaType, raw, img.tag)
	if err != nil {
		return err
	}
	return a.referrers(img, v1.Descriptor{MediaType: im.MediaType, Size: int64(len(raw)), Digest: d})
}

// platform adds one image or artifact manifest with its config and layers,
// tagged when the image is not an index, and returns its descriptor.
func (a *assembler) platform(img imageDef, pd platformDef) (v1.Descriptor, error) {
	layerType, configType, manifestType := types.OCILayer, types.OCIConfigJSON, types.OCIManifestSchema1
	if img.docker {
		layerType, configType, manifestType = types.DockerLayer, types.DockerConfigJSON, types.DockerManifestSchema2
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: manifestType, ArtifactType: img.artifactType}
	var diffIDs []v1.Hash
	var history []v1.History
	for i, id := range pd.layers {
		blob, r := a.layerBlob(id, layerType)
		a.b.AddBlob(img.repo, blob)
		desc := v1.Descriptor{MediaType: layerType, Size: r.Size, Digest: r.Digest}
		if i < len(pd.titles) {
			desc.Annotations = map[string]string{"org.opencontainers.image.title": pd.titles[i]}
		}
		m.Layers = append(m.Layers, desc)
		diffIDs = append(diffIDs, r.DiffID)
		history = append(history, v1.History{Created: v1.Time{Time: img.created}, CreatedBy: "ADD " + id + " /"})
	}
	var cfg Blob
	if img.artifactType != "" {
		cfg = DataBlob(types.OCIEmptyJSON, emptyJSON)
		m.Annotations = map[string]string{"org.opencontainers.image.created": img.created.Format(time.RFC3339)}
	} else {
		cf := v1.ConfigFile{
			Architecture: pd.platform.Architecture, OS: pd.platform.OS, OSVersion: pd.platform.OSVersion,
			Variant: pd.platform.Variant, Created: v1.Time{Time: img.created}, History: history,
			RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs},
			Config: v1.Config{Entrypoint: pd.entrypoint, User: "0"},
		}
		if pd.platform.OS == "linux" {
			cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		}
		raw, err := marshal(cf, false)
		if err != nil {
			return v1.Descriptor{}, err
		}
		cfg = DataBlob(configType, raw)
	}
	a.b.AddBlob(img.repo, cfg)
	m.Config = v1.Descriptor{MediaType: cfg.MediaType, Size: cfg.Size, Digest: cfg.Digest}
	raw, err := marshal(m, img.docker)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var tags []string
	if !img.index {
		tags = []string{img.tag}
	}
	d, err := a.b.AddManifest(img.repo, manifestType, raw, tags...)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: manifestType, Size: int64(len(raw)), Digest: d}, nil
}

// referrers attaches the image's referrer artifacts (untagged OCI manifests
// whose subject is the image's top-level manifest).
func (a *assembler) referrers(img imageDef, subject v1.Descriptor) error {
	for _, rd := range img.referrers {
		body, annotations := a.referrerBody(rd, subject, img.created)
		blob := DataBlob(types.MediaType(rd.blobType), body)
		empty := DataBlob(types.OCIEmptyJSON, emptyJSON)
		a.b.AddBlob(img.repo, blob)
		a.b.AddBlob(img.repo, empty)
		m := v1.Manifest{
			SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: rd.artifactType,
			Config:      v1.Descriptor{MediaType: types.OCIEmptyJSON, Size: empty.Size, Digest: empty.Digest},
			Layers:      []v1.Descriptor{{MediaType: blob.MediaType, Size: blob.Size, Digest: blob.Digest}},
			Subject:     &subject,
			Annotations: annotations,
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := a.b.AddManifest(img.repo, m.MediaType, raw); err != nil {
			return err
		}
	}
	return nil
}

// referrerBody returns a deterministic, plausible signature envelope or SBOM.
func (a *assembler) referrerBody(rd referrerDef, subject v1.Descriptor, created time.Time) ([]byte, map[string]string) {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%s/%s", a.seed, rd.artifactType, subject.Digest))
	ts := created.Format(time.RFC3339)
	if rd.artifactType == ArtifactTypeSPDX {
		doc := map[string]any{
			"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
			"name":              "oss/kubernetes/pause@" + subject.Digest.String(),
			"documentNamespace": fmt.Sprintf("https://sbom.example.invalid/%x", h[:8]),
			"creationInfo":      map[string]any{"created": ts, "creators": []string{"Tool: airlock-mar"}},
			"packages":          []map[string]string{{"SPDXID": "SPDXRef-pause", "name": "pause", "versionInfo": aks.PauseTag, "downloadLocation": "NOASSERTION"}},
		}
		raw, _ := json.Marshal(doc)
		return raw, map[string]string{"org.opencontainers.image.created": ts}
	}
	payload, _ := json.Marshal(map[string]any{"targetArtifact": subject})
	protected, _ := json.Marshal(map[string]any{"alg": "PS256", "cty": "application/vnd.cncf.notary.payload.v1+json", "io.cncf.notary.signingTime": ts})
	b64 := base64.RawURLEncoding.EncodeToString
	env, _ := json.Marshal(map[string]any{
		"payload": b64(payload), "protected": b64(protected),
		"header":    map[string]any{"x5c": []string{b64(h[:])}},
		"signature": b64(append(h[:], h[:]...)),
	})
	return env, map[string]string{
		"io.cncf.notary.x509chain.thumbprint#S256": fmt.Sprintf("[%q]", fmt.Sprintf("%x", h)),
		"org.opencontainers.image.created":         ts,
	}
}
