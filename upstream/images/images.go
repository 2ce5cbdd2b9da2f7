// Package images resolves image lists on a registry for pre-warming and
// bundling: it reads list files, walks each reference's manifests (an index
// down to the platforms asked for), and fetches blobs through one
// authenticated client, verifying every digest. It does not know airlock's
// cache: the warm command points it at airlock, bundle export at any
// registry.
package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ErrUnsupported means a manifest's media type is not an image, index or
// artifact manifest airlock serves.
var ErrUnsupported = errors.New("images: unsupported manifest media type")

// ParseList reads an image list: one reference per line, e.g.
// mcr.microsoft.com/oss/kubernetes/pause:3.10; blank lines and lines
// starting with # are skipped, as is anything after " #".
func ParseList(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("images: line %d: %q is not one image reference", n, line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("images: read list: %w", err)
	}
	return out, nil
}

// ParsePlatforms parses a comma-separated list like
// "linux/amd64,linux/arm64/v8"; "" means every platform.
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := v1.ParsePlatform(f)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("images: platform %q must be os/arch[/variant]", f)
		}
		out = append(out, *p)
	}
	return out, nil
}

// Manifest is a manifest fetched while resolving, byte for byte.
type Manifest struct {
	Descriptor v1.Descriptor
	Raw        []byte
}

// Image is one reference resolved: what pulling it needs.
type Image struct {
	Ref  name.Reference
	Root v1.Descriptor
	// Manifests holds the root first, then the manifests of the platforms
	// selected, each once.
	Manifests []Manifest
	// Blobs holds the configs and layers of the selected manifests, each once.
	Blobs []v1.Descriptor
}

// Size is the bytes of every manifest and blob the image needs.
func (im *Image) Size() int64 {
	var n int64
	for _, m := range im.Manifests {
		n += m.Descriptor.Size
	}
	for _, b := range im.Blobs {
		n += b.Size
	}
	return n
}

// Resolver walks references' manifests.
type Resolver struct {
	Puller *remote.Puller
	// Platforms selects an index's children; empty: all of them.
	Platforms []v1.Platform
}

// Resolve fetches ref's manifest and, for an index, the manifests of the
// selected platforms, and lists the blobs they need.
func (r *Resolver) Resolve(ctx context.Context, ref name.Reference) (*Image, error) {
	d, err := r.Puller.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	im := &Image{Ref: ref, Root: d.Descriptor}
	seen := map[v1.Hash]bool{}
	if err := r.walk(ctx, ref.Context(), Manifest{Descriptor: d.Descriptor, Raw: d.Manifest}, im, seen, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if len(im.Manifests) == 1 && im.Root.MediaType.IsIndex() && len(r.Platforms) > 0 {
		return nil, fmt.Errorf("%s: no manifest for platforms %v", ref, r.Platforms)
	}
	return im, nil
}

func (r *Resolver) walk(ctx context.Context, repo name.Repository, m Manifest, im *Image, seen map[v1.Hash]bool, depth int) error {
	if seen[m.Descriptor.Digest] {
		return nil
	}
	seen[m.Descriptor.Digest] = true
	im.Manifests = append(im.Manifests, m)
	mt := m.Descriptor.MediaType
	switch {
	case mt.IsIndex():
		if depth > 4 {
			return errors.New("indexes nested too deeply")
		}
		idx, err := v1.ParseIndexManifest(strings.NewReader(string(m.Raw)))
		if err != nil {
			return fmt.Errorf("index %s: %w", m.Descriptor.Digest, err)
		}
		for _, c := range idx.Manifests {
			if !c.MediaType.IsIndex() && !r.wanted(c.Platform) {
				continue
			}
			cd, err := r.Puller.Get(ctx, repo.Digest(c.Digest.String()))
			if err != nil {
				return err
			}
			desc := cd.Descriptor
			desc.Platform = c.Platform
			if err := r.walk(ctx, repo, Manifest{Descriptor: desc, Raw: cd.Manifest}, im, seen, depth+1); err != nil {
				return err
			}
		}
	case mt.IsImage():
		man, err := v1.ParseManifest(strings.NewReader(string(m.Raw)))
		if err != nil {
			return fmt.Errorf("manifest %s: %w", m.Descriptor.Digest, err)
		}
		for _, b := range append([]v1.Descriptor{man.Config}, man.Layers...) {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				im.Blobs = append(im.Blobs, b)
			}
		}
	default:
		return fmt.Errorf("%w: %s", ErrUnsupported, mt)
	}
	return nil
}

// wanted reports whether an index child's platform was asked for.
func (r *Resolver) wanted(p *v1.Platform) bool {
	if len(r.Platforms) == 0 {
		return true
	}
	if p == nil {
		return false
	}
	for _, w := range r.Platforms {
		if p.Satisfies(w) {
			return true
		}
	}
	return false
}

// Fetch copies blob b of repo to w, verifying its digest and size.
func Fetch(ctx context.Context, p *remote.Puller, repo name.Repository, b v1.Descriptor, w io.Writer) (int64, error) {
	l, err := p.Layer(ctx, repo.Digest(b.Digest.String()))
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed() // verifies the digest as it reads
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if n != b.Size {
		return n, fmt.Errorf("blob %s: %d bytes, its descriptor says %d", b.Digest, n, b.Size)
	}
	return n, nil
}
