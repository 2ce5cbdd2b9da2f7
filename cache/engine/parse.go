package engine

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Manifest media types airlock understands.
const (
	MediaTypeOCIIndex         = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest      = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList       = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeOCIEmptyArtifact = "application/vnd.oci.empty.v1+json"
)

// parsed is what the cache needs to know of a manifest's content.
type parsed struct {
	MediaType    string
	ArtifactType string
	Subject      digest.Digest
	Children     []digest.Digest // index entries
	Blobs        []digest.Digest // config and layers
	Annotations  map[string]string
}

type descriptorJSON struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifestJSON struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptorJSON   `json:"config"`
	Layers        []descriptorJSON  `json:"layers"`
	Manifests     []descriptorJSON  `json:"manifests"`
	Subject       *descriptorJSON   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parseManifest extracts references from a manifest body. mediaType is the
// declared type (Content-Type), used when the body does not name one.
func parseManifest(body []byte, mediaType string) (parsed, error) {
	var m manifestJSON
	if err := json.Unmarshal(body, &m); err != nil {
		return parsed{}, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	p := parsed{MediaType: m.MediaType, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if p.MediaType == "" {
		p.MediaType = mediaType
	}
	for _, d := range m.Manifests {
		if err := d.Digest.Validate(); err != nil {
			return parsed{}, fmt.Errorf("index entry digest %q: %w", d.Digest, err)
		}
		p.Children = append(p.Children, d.Digest)
	}
	if m.Config != nil {
		if err := m.Config.Digest.Validate(); err != nil {
			return parsed{}, fmt.Errorf("config digest %q: %w", m.Config.Digest, err)
		}
		p.Blobs = append(p.Blobs, m.Config.Digest)
		if p.ArtifactType == "" && m.Config.MediaType != mediaTypeOCIEmptyArtifact && p.MediaType == MediaTypeOCIManifest {
			p.ArtifactType = m.Config.MediaType
		}
	}
	for _, d := range m.Layers {
		if err := d.Digest.Validate(); err != nil {
			return parsed{}, fmt.Errorf("layer digest %q: %w", d.Digest, err)
		}
		p.Blobs = append(p.Blobs, d.Digest)
	}
	if m.Subject != nil {
		if err := m.Subject.Digest.Validate(); err != nil {
			return parsed{}, fmt.Errorf("subject digest %q: %w", m.Subject.Digest, err)
		}
		p.Subject = m.Subject.Digest
	}
	return p, nil
}

func (p parsed) refs() []digest.Digest {
	out := make([]digest.Digest, 0, len(p.Children)+len(p.Blobs))
	out = append(out, p.Children...)
	return append(out, p.Blobs...)
}
