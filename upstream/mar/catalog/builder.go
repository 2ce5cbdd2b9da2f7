package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Builder assembles a Catalog; safe for concurrent use.
type Builder struct {
	mu sync.Mutex
	c  *Catalog
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	return &Builder{c: &Catalog{
		repos:     map[string]*repo{},
		manifests: map[v1.Hash]Manifest{},
		blobs:     map[v1.Hash]Blob{},
	}}
}

func (b *Builder) repo(name string) *repo {
	r, ok := b.c.repos[name]
	if !ok {
		r = &repo{
			tags:      map[string]v1.Hash{},
			manifests: map[v1.Hash]bool{},
			blobs:     map[v1.Hash]bool{},
			referrers: map[v1.Hash][]v1.Descriptor{},
		}
		b.c.repos[name] = r
	}
	return r
}

// AddBlob makes blob available in repository name. A blob already known
// keeps its first location.
func (b *Builder) AddBlob(name string, blob Blob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.c.blobs[blob.Digest]; !ok {
		b.c.blobs[blob.Digest] = blob
	}
	b.repo(name).blobs[blob.Digest] = true
}

// AddManifest stores raw (served byte for byte with media type mt) in
// repository name, points the given tags at it, and records it as a referrer
// of its subject if it has one. It returns the manifest digest.
func (b *Builder) AddManifest(name string, mt types.MediaType, raw []byte, tags ...string) (v1.Hash, error) {
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("hash manifest: %w", err)
	}
	var probe struct {
		ArtifactType string            `json:"artifactType"`
		Config       *v1.Descriptor    `json:"config"`
		Subject      *v1.Descriptor    `json:"subject"`
		Annotations  map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return v1.Hash{}, fmt.Errorf("parse manifest %s in %s: %w", d, name, err)
	}
	m := Manifest{Digest: d, MediaType: mt, ArtifactType: probe.ArtifactType, Raw: raw}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.c.manifests[d] = m
	r := b.repo(name)
	r.manifests[d] = true
	for _, t := range tags {
		r.tags[t] = d
	}
	if probe.Subject != nil && !hasDigest(r.referrers[probe.Subject.Digest], d) {
		at := probe.ArtifactType
		if at == "" && probe.Config != nil {
			at = string(probe.Config.MediaType) // OCI 1.1: fall back to config media type
		}
		desc := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: d, ArtifactType: at, Annotations: probe.Annotations}
		refs := append(r.referrers[probe.Subject.Digest], desc)
		sort.Slice(refs, func(i, j int) bool { return refs[i].Digest.String() < refs[j].Digest.String() })
		r.referrers[probe.Subject.Digest] = refs
	}
	return d, nil
}

func hasDigest(ds []v1.Descriptor, d v1.Hash) bool {
	for _, x := range ds {
		if x.Digest == d {
			return true
		}
	}
	return false
}

// Build checks that every manifest's references exist in its repository and
// returns the catalog. The builder must not be used afterwards.
func (b *Builder) Build() (*Catalog, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.c
	for _, name := range c.Repos() {
		r := c.repos[name]
		tags, _ := c.Tags(name)
		for _, tag := range tags {
			img, err := c.describe(name, r, tag)
			if err != nil {
				return nil, err
			}
			c.images = append(c.images, img)
		}
		for d := range r.manifests {
			if err := c.checkRefs(name, r, c.manifests[d]); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Catalog) checkRefs(name string, r *repo, m Manifest) error {
	if m.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(m.Raw))
		if err != nil {
			return fmt.Errorf("%s@%s: %w", name, m.Digest, err)
		}
		for _, ch := range im.Manifests {
			if !r.manifests[ch.Digest] {
				return fmt.Errorf("%s@%s: child %s: %w", name, m.Digest, ch.Digest, ErrManifestUnknown)
			}
		}
		return nil
	}
	mf, err := v1.ParseManifest(bytes.NewReader(m.Raw))
	if err != nil {
		return fmt.Errorf("%s@%s: %w", name, m.Digest, err)
	}
	for _, l := range append([]v1.Descriptor{mf.Config}, mf.Layers...) {
		bl, ok := c.blobs[l.Digest]
		if !ok || !r.blobs[l.Digest] {
			return fmt.Errorf("%s@%s: blob %s: %w", name, m.Digest, l.Digest, ErrBlobUnknown)
		}
		if bl.Size != l.Size {
			return fmt.Errorf("%s@%s: blob %s has size %d, descriptor says %d", name, m.Digest, l.Digest, bl.Size, l.Size)
		}
	}
	return nil
}

func (c *Catalog) describe(name string, r *repo, tag string) (Image, error) {
	m := c.manifests[r.tags[tag]]
	img := Image{Repo: name, Tag: tag, Digest: m.Digest, MediaType: m.MediaType, ArtifactType: m.ArtifactType, Size: int64(len(m.Raw))}
	if !m.IsIndex() {
		pm, err := c.platformManifest(m, nil)
		if err != nil {
			return Image{}, fmt.Errorf("%s:%s: %w", name, tag, err)
		}
		img.Platforms = []PlatformManifest{pm}
		return img, nil
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(m.Raw))
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", name, tag, err)
	}
	for _, ch := range im.Manifests {
		cm, ok := c.manifests[ch.Digest]
		if !ok || !r.manifests[ch.Digest] || cm.IsIndex() {
			continue // reported by checkRefs; nested indexes are not described
		}
		pm, err := c.platformManifest(cm, ch.Platform)
		if err != nil {
			return Image{}, fmt.Errorf("%s:%s: %w", name, tag, err)
		}
		img.Platforms = append(img.Platforms, pm)
	}
	return img, nil
}

func (c *Catalog) platformManifest(m Manifest, p *v1.Platform) (PlatformManifest, error) {
	mf, err := v1.ParseManifest(bytes.NewReader(m.Raw))
	if err != nil {
		return PlatformManifest{}, fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	pm := PlatformManifest{Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Raw)), Config: mf.Config, Layers: mf.Layers}
	switch {
	case p != nil:
		pm.Platform = *p
	case mf.Config.MediaType == "application/vnd.oci.image.config.v1+json" || mf.Config.MediaType == "application/vnd.docker.container.image.v1+json":
		if cfg, ok := c.blobs[mf.Config.Digest]; ok {
			pm.Platform = configPlatform(cfg)
		}
	}
	return pm, nil
}

// configPlatform reads os/architecture from an image config; zero on error.
func configPlatform(b Blob) v1.Platform {
	rc, err := b.Open()
	if err != nil {
		return v1.Platform{}
	}
	defer rc.Close()
	cf, err := v1.ParseConfigFile(io.LimitReader(rc, 4<<20))
	if err != nil {
		return v1.Platform{}
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
}
