package engine

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Manifest media types airlock understands.
const (
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

// parsed is what the cache needs to know of a manifest's content.
type parsed struct {
	MediaType    string
	ArtifactType string
	Subject      digest.Digest
	Children     []digest.Digest // index entries
	Blobs        []digest.Digest // config and layers
	Annotations  map[string]string

	// What a push is checked against.
	SchemaVersion int
	HasConfig     bool
	// Foreign are non-distributable layers (or layers with URLs): they are
	// fetched from elsewhere and never required locally.
	Foreign []digest.Digest
}

type descriptorJSON struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
}

// foreign reports whether a layer lives outside the registry.
func (d descriptorJSON) foreign() bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, ".nondistributable.") || strings.Contains(d.MediaType, ".foreign.")
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
	p := parsed{SchemaVersion: m.SchemaVersion, HasConfig: m.Config != nil, MediaType: m.MediaType, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
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
		// OCI referrers: an image manifest without artifactType is listed
		// with its config's media type (the empty config's too).
		if p.ArtifactType == "" && p.MediaType == MediaTypeOCIManifest {
			p.ArtifactType = m.Config.MediaType
		}
	}
	for _, d := range m.Layers {
		if err := d.Digest.Validate(); err != nil {
			return parsed{}, fmt.Errorf("layer digest %q: %w", d.Digest, err)
		}
		if d.foreign() {
			p.Foreign = append(p.Foreign, d.Digest)
			continue
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
