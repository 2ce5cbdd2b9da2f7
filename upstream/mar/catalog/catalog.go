// Package catalog holds the content the MAR emulator serves: repositories,
// tags, manifests (stored byte for byte) and blobs, plus the deterministic
// generator of the "aks" catalog: every image and artifact an AKS node pulls
// at bootstrap, for each release of deploy/aks (the control module's table),
// and a few more tags. Tests, the bench and the lab read it as Go data to
// know what exists upstream.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/airlock/airlock/deploy/aks"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sentinel errors returned by Catalog lookups; wrapped with the name or digest.
var (
	// ErrNameUnknown: the repository does not exist.
	ErrNameUnknown = errors.New("repository name not known")
	// ErrManifestUnknown: no such tag or manifest digest in the repository.
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrBlobUnknown: no such blob in the repository.
	ErrBlobUnknown = errors.New("blob unknown")
)

// Artifact and referrer types used by the aks catalog.
const (
	// ArtifactTypeKubeletPackage is the artifactType of aks/packages/kubernetes/kubelet.
	ArtifactTypeKubeletPackage = "application/vnd.aks.kubelet.package.v1"
	// ArtifactTypeBinaryPackage is the artifactType of the oss/binaries/... artifacts.
	ArtifactTypeBinaryPackage = "application/vnd.aks.binary.package.v1"
	// ArtifactTypeNotarySignature is the artifactType of the signature referrer.
	ArtifactTypeNotarySignature = "application/vnd.cncf.notary.signature"
	// ArtifactTypeSPDX is the artifactType of the SBOM referrer.
	ArtifactTypeSPDX = "application/spdx+json"
)

// Ref names a tagged manifest, without registry host. It is the control
// module's type: the aks catalog serves every reference deploy/aks lists.
type Ref = aks.Ref

// Blob is one blob (layer, config, artifact file) and where its bytes live.
type Blob struct {
	Digest    v1.Hash
	Size      int64
	MediaType types.MediaType // media type of the first descriptor that referenced it

	path string // file holding the bytes, or "" when data is set
	data []byte
}

// FileBlob returns a blob whose bytes are in the file at path.
func FileBlob(d v1.Hash, size int64, mt types.MediaType, path string) Blob {
	return Blob{Digest: d, Size: size, MediaType: mt, path: path}
}

// DataBlob returns a blob held in memory.
func DataBlob(mt types.MediaType, data []byte) Blob {
	d, n, _ := v1.SHA256(bytes.NewReader(data))
	return Blob{Digest: d, Size: n, MediaType: mt, data: data}
}

// Path returns the file holding the blob, or "" for an in-memory blob.
func (b Blob) Path() string { return b.path }

// Open returns the blob's bytes. For a blob on disk the result is an *os.File
// (so http.ServeContent can use sendfile).
func (b Blob) Open() (io.ReadSeekCloser, error) {
	if b.path == "" {
		return nopCloser{bytes.NewReader(b.data)}, nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", b.Digest, err)
	}
	return f, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Manifest is a manifest or index as stored: Raw is served byte for byte.
type Manifest struct {
	Digest       v1.Hash
	MediaType    types.MediaType
	ArtifactType string
	Raw          []byte
}

// Descriptor returns the manifest's descriptor (without platform).
func (m Manifest) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: m.MediaType, Size: int64(len(m.Raw)), Digest: m.Digest, ArtifactType: m.ArtifactType}
}

// IsIndex reports whether the manifest is an OCI index or Docker manifest list.
func (m Manifest) IsIndex() bool { return m.MediaType.IsIndex() }

// PlatformManifest is one image manifest, either a child of an index or the
// tag's only manifest.
type PlatformManifest struct {
	Platform  v1.Platform // from the index descriptor, else from the config
	Digest    v1.Hash
	MediaType types.MediaType
	Size      int64
	Config    v1.Descriptor
	Layers    []v1.Descriptor
}

// Image is one tag as a client sees it.
type Image struct {
	Repo         string
	Tag          string
	Digest       v1.Hash // of the top-level manifest or index
	MediaType    types.MediaType
	ArtifactType string
	Size         int64
	Platforms    []PlatformManifest // one entry when the tag is not an index
}

// Ref returns the image's repo:tag.
func (i Image) Ref() Ref { return Ref{Repo: i.Repo, Tag: i.Tag} }

// Platform returns the manifest for os/arch ("linux/amd64"), if any. A tag
// that is a single manifest with no known platform (an artifact with the
// empty config) matches any os/arch.
func (i Image) Platform(osArch string) (PlatformManifest, bool) {
	if len(i.Platforms) == 1 && i.Platforms[0].Platform.OS == "" {
		return i.Platforms[0], true
	}
	for _, p := range i.Platforms {
		if p.Platform.OS+"/"+p.Platform.Architecture == osArch {
			return p, true
		}
	}
	return PlatformManifest{}, false
}

// Catalog is an immutable set of repositories; safe for concurrent use.
type Catalog struct {
	repos     map[string]*repo
	manifests map[v1.Hash]Manifest
	blobs     map[v1.Hash]Blob
	images    []Image
}

type repo struct {
	tags      map[string]v1.Hash
	manifests map[v1.Hash]bool
	blobs     map[v1.Hash]bool
	referrers map[v1.Hash][]v1.Descriptor // subject digest -> referrers
}

// Repos returns the repository names, sorted.
func (c *Catalog) Repos() []string {
	out := make([]string, 0, len(c.repos))
	for n := range c.repos {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Tags returns the repository's tags, sorted. It returns ErrNameUnknown if
// the repository does not exist.
func (c *Catalog) Tags(name string) ([]string, error) {
	r, ok := c.repos[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNameUnknown)
	}
	out := make([]string, 0, len(r.tags))
	for t := range r.tags {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// Resolve returns the manifest for a tag or digest reference in a repository.
// It returns ErrNameUnknown or ErrManifestUnknown.
func (c *Catalog) Resolve(name, ref string) (Manifest, error) {
	r, ok := c.repos[name]
	if !ok {
		return Manifest{}, fmt.Errorf("%s: %w", name, ErrNameUnknown)
	}
	d, ok := r.tags[ref]
	if !ok {
		h, err := v1.NewHash(ref)
		if err != nil || !r.manifests[h] {
			return Manifest{}, fmt.Errorf("%s:%s: %w", name, ref, ErrManifestUnknown)
		}
		d = h
	}
	return c.manifests[d], nil
}

// Blob returns a blob of a repository. It returns ErrNameUnknown or ErrBlobUnknown.
func (c *Catalog) Blob(name string, d v1.Hash) (Blob, error) {
	r, ok := c.repos[name]
	if !ok {
		return Blob{}, fmt.Errorf("%s: %w", name, ErrNameUnknown)
	}
	if !r.blobs[d] {
		return Blob{}, fmt.Errorf("%s@%s: %w", name, d, ErrBlobUnknown)
	}
	return c.blobs[d], nil
}

// Referrers returns the descriptors of manifests whose subject is d, in
// digest order; empty (never an error) when there are none.
func (c *Catalog) Referrers(name string, d v1.Hash) []v1.Descriptor {
	r, ok := c.repos[name]
	if !ok {
		return nil
	}
	return append([]v1.Descriptor(nil), r.referrers[d]...)
}

// Images returns every tag, sorted by repository then tag.
func (c *Catalog) Images() []Image { return append([]Image(nil), c.images...) }

// Image returns the image for repo:tag.
func (c *Catalog) Image(name, tag string) (Image, bool) {
	for _, i := range c.images {
		if i.Repo == name && i.Tag == tag {
			return i, true
		}
	}
	return Image{}, false
}

// Blobs returns every blob, sorted by digest.
func (c *Catalog) Blobs() []Blob { return byDigest(c.blobs) }

// Manifests returns every manifest, sorted by digest.
func (c *Catalog) Manifests() []Manifest { return byDigest(c.manifests) }

// byDigest lists m's values in the order of their digests.
func byDigest[T any](m map[v1.Hash]T) []T {
	keys := make([]v1.Hash, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	out := make([]T, 0, len(m))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// TotalBlobSize returns the sum of all blob sizes (each blob counted once).
func (c *Catalog) TotalBlobSize() int64 {
	var n int64
	for _, b := range c.blobs {
		n += b.Size
	}
	return n
}
