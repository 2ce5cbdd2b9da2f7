package bundle

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// manifest is what import needs to know of a manifest or index body.
type manifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Manifests    []descriptor      `json:"manifests"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

type descriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

const (
	mediaTypeOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIEmpty    = "application/vnd.oci.empty.v1+json"
)

func parseManifest(b []byte, declared string) (manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	if m.MediaType == "" {
		m.MediaType = declared
	}
	for _, d := range append(append(append([]descriptor(nil), m.Layers...), m.Manifests...), opt(m.Config)...) {
		if err := d.Digest.Validate(); err != nil {
			return m, fmt.Errorf("descriptor digest %q: %w", d.Digest, err)
		}
	}
	if m.ArtifactType == "" && m.Config != nil && m.Config.MediaType != mediaTypeOCIEmpty && m.MediaType == mediaTypeOCIManifest {
		m.ArtifactType = m.Config.MediaType
	}
	return m, nil
}

func opt(d *descriptor) []descriptor {
	if d == nil {
		return nil
	}
	return []descriptor{*d}
}

// blobs are the config and layers.
func (m manifest) blobs() []descriptor { return append(opt(m.Config), m.Layers...) }

// refs lists children, then config and layers, as the engine records them.
func (m manifest) refs() []digest.Digest {
	var out []digest.Digest
	for _, d := range m.Manifests {
		out = append(out, d.Digest)
	}
	for _, d := range m.blobs() {
		out = append(out, d.Digest)
	}
	return out
}
