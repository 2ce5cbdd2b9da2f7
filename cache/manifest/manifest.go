// Package manifest reads manifest bodies on image-spec types: OCI image
// manifests and indexes, and Docker's schema 2 manifests and manifest lists,
// which have the same shape. It says what a manifest references (children,
// config, layers, subject), how the referrers API lists it, and whether a
// pushed body is one a registry can serve. The pull-through engine and the
// bundle importer both read manifests through it.
package manifest

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types airlock serves.
const (
	MediaTypeOCIIndex       = v1.MediaTypeImageIndex
	MediaTypeOCIManifest    = v1.MediaTypeImageManifest
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

// Manifest is a parsed manifest or index body. A body may carry the fields
// of both shapes; those it lacks are empty.
type Manifest struct {
	SchemaVersion int
	// MediaType is the body's mediaType, else the type it was declared
	// with (Content-Type).
	MediaType string
	// ArtifactType is the body's artifactType, else, for an OCI image
	// manifest, its config's media type: what the referrers API lists.
	ArtifactType string
	Config       *v1.Descriptor  // nil for an index
	Layers       []v1.Descriptor // all layers, foreign ones too
	Manifests    []v1.Descriptor // an index's entries
	Subject      *v1.Descriptor
	Annotations  map[string]string
}

// body is the wire form: image-spec's manifest and index in one, with the
// config a pointer to tell an index from a manifest.
type body struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// Parse reads a manifest body. mediaType is the declared type
// (Content-Type), used when the body names none. It returns an error when
// the body is not JSON of a manifest's shape or a descriptor's digest is
// not valid.
func Parse(b []byte, mediaType string) (Manifest, error) {
	var w body
	if err := json.Unmarshal(b, &w); err != nil {
		return Manifest{}, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	m := Manifest(w)
	if m.MediaType == "" {
		m.MediaType = mediaType
	}
	for _, g := range []struct {
		what string
		ds   []v1.Descriptor
	}{{"index entry", m.Manifests}, {"config", opt(m.Config)}, {"layer", m.Layers}, {"subject", opt(m.Subject)}} {
		for _, d := range g.ds {
			if err := d.Digest.Validate(); err != nil {
				return Manifest{}, fmt.Errorf("%s digest %q: %w", g.what, d.Digest, err)
			}
		}
	}
	// The referrers API lists an image manifest without artifactType by its
	// config's media type (the empty config's too).
	if m.Config != nil && m.ArtifactType == "" && m.MediaType == MediaTypeOCIManifest {
		m.ArtifactType = m.Config.MediaType
	}
	return m, nil
}

func opt(d *v1.Descriptor) []v1.Descriptor {
	if d == nil {
		return nil
	}
	return []v1.Descriptor{*d}
}

// Foreign reports whether a layer lives outside the registry (it has URLs
// or a non-distributable media type): it is fetched from elsewhere and
// never required locally.
func Foreign(d v1.Descriptor) bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, ".nondistributable.") || strings.Contains(d.MediaType, ".foreign.")
}

// Blobs are the blobs the registry holds for the manifest: its config, then
// its layers that are not foreign.
func (m Manifest) Blobs() []v1.Descriptor {
	out := append(make([]v1.Descriptor, 0, len(m.Layers)+1), opt(m.Config)...)
	for _, d := range m.Layers {
		if !Foreign(d) {
			out = append(out, d)
		}
	}
	return out
}

// Refs lists what the manifest needs in the registry, as the metadata
// index records it: the index entries, then the Blobs.
func (m Manifest) Refs() []digest.Digest {
	out := make([]digest.Digest, 0, len(m.Manifests)+len(m.Layers)+1)
	for _, d := range m.Manifests {
		out = append(out, d.Digest)
	}
	for _, d := range m.Blobs() {
		out = append(out, d.Digest)
	}
	return out
}

// SubjectDigest is the subject's digest, "" without one.
func (m Manifest) SubjectDigest() digest.Digest {
	if m.Subject == nil {
		return ""
	}
	return m.Subject.Digest
}

// ParsePushed parses a pushed body and checks it is one a registry can
// serve: schema version 2, a manifest media type airlock knows that agrees
// with contentType (when given), and a config for an image manifest. A body
// without a media type, pushed without one, is an OCI manifest when it has
// a config and an OCI index otherwise.
func ParsePushed(b []byte, contentType string) (Manifest, error) {
	m, err := Parse(b, contentType)
	if err != nil {
		return Manifest{}, err
	}
	if contentType != "" && m.MediaType != contentType {
		return Manifest{}, fmt.Errorf("mediaType %q differs from Content-Type %q", m.MediaType, contentType)
	}
	if m.MediaType == "" {
		m.MediaType = MediaTypeOCIIndex
		if m.Config != nil {
			m.MediaType = MediaTypeOCIManifest
		}
	}
	if m.SchemaVersion != 2 {
		return Manifest{}, fmt.Errorf("schemaVersion must be 2")
	}
	switch m.MediaType {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if m.Config == nil {
			return Manifest{}, fmt.Errorf("an image manifest needs a config")
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
	default:
		return Manifest{}, fmt.Errorf("unsupported manifest media type %q", m.MediaType)
	}
	return m, nil
}
