// Package fromdir adds the images found in a directory to a MAR emulator
// catalog: OCI image layouts (served from the layout's own blob files) and
// tarballs written by `docker save` or `crane pull` (layers copied into a
// cache directory once).
package fromdir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/zap"

	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// Annotations naming an image in an OCI layout's index.json.
const (
	AnnotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerdRef = "io.containerd.image.name"
)

// Load walks dir and adds every OCI layout (a directory holding an
// "oci-layout" file) and every "*.tar" image tarball to b. Layout entries are
// named by their ref.name annotation: a full reference ("host/repo:tag", host
// stripped) or a bare tag, in which case the repository is the layout's path
// relative to dir (or dir's base name for dir itself). Tarball images are
// named by their RepoTags, host stripped. Tarball layers are copied to
// cacheDir. Images that cannot be named or are incomplete are skipped with a
// warning; unreadable files are errors.
func Load(ctx context.Context, b *catalog.Builder, dir, cacheDir string, log *zap.Logger) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("from %s: %w", dir, err)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("from %s: %w", dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "oci-layout")); err != nil {
				return nil
			}
			repo := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
			if p == root {
				repo = filepath.Base(root)
			}
			if err := loadLayout(b, p, strings.ToLower(repo), log); err != nil {
				return err
			}
			return fs.SkipDir
		}
		if strings.HasSuffix(p, ".tar") && d.Type().IsRegular() {
			return loadTarball(ctx, b, p, cacheDir, log)
		}
		return nil
	})
}

// SplitRef splits "host/repo:tag" or "repo:tag" into repo and tag (empty if
// none), dropping a registry host (a first component holding "." or ":", or
// "localhost") and any "@digest".
func SplitRef(ref string) (repo, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	if first, rest, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		ref = rest
	}
	return ref, tag
}

func loadLayout(b *catalog.Builder, dir, dirRepo string, log *zap.Logger) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	for _, desc := range im.Manifests {
		ref := desc.Annotations[AnnotationRefName]
		if ref == "" {
			ref = desc.Annotations[annotationContainerdRef]
		}
		repo, tag := dirRepo, ref
		if strings.ContainsAny(ref, "/:") {
			repo, tag = SplitRef(ref)
		}
		if !rules.ValidRepository(repo) || (tag != "" && !reference.ValidTag(tag)) {
			log.Warn("skipping layout entry with an unusable name", zap.String("layout", dir), zap.String("ref", ref), zap.String("repo", repo))
			continue
		}
		var tags []string
		if tag != "" {
			tags = []string{tag}
		}
		l := &layoutLoader{dir: dir, repo: repo}
		if err := l.add(desc, tags); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				log.Warn("skipping incomplete layout entry", zap.String("layout", dir), zap.String("ref", ref), zap.Error(err))
				continue
			}
			return err
		}
		if err := l.commit(b); err != nil {
			return err
		}
		log.Info("serving image from OCI layout", zap.String("repo", repo), zap.String("tag", tag), zap.Stringer("digest", desc.Digest))
	}
	return nil
}

// layoutLoader collects one top-level entry so an incomplete one can be
// skipped as a whole.
type layoutLoader struct {
	dir, repo string
	blobs     []catalog.Blob
	manifests []pending
}

type pending struct {
	mt   types.MediaType
	raw  []byte
	tags []string
}

func (l *layoutLoader) blobPath(h v1.Hash) string {
	return filepath.Join(l.dir, "blobs", h.Algorithm, h.Hex)
}

func (l *layoutLoader) add(desc v1.Descriptor, tags []string) error {
	raw, err := os.ReadFile(l.blobPath(desc.Digest))
	if err != nil {
		return fmt.Errorf("layout %s: manifest %s: %w", l.dir, desc.Digest, err)
	}
	if d, _, _ := v1.SHA256(bytes.NewReader(raw)); d != desc.Digest {
		return fmt.Errorf("layout %s: manifest %s hashes to %s", l.dir, desc.Digest, d)
	}
	l.manifests = append(l.manifests, pending{mt: desc.MediaType, raw: raw, tags: tags})
	if desc.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("layout %s: index %s: %w", l.dir, desc.Digest, err)
		}
		for _, ch := range im.Manifests {
			if err := l.add(ch, nil); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("layout %s: manifest %s: %w", l.dir, desc.Digest, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		fi, err := os.Stat(l.blobPath(d.Digest))
		if err != nil {
			return fmt.Errorf("layout %s: blob %s: %w", l.dir, d.Digest, err)
		}
		if fi.Size() != d.Size {
			return fmt.Errorf("layout %s: blob %s is %d bytes, descriptor says %d", l.dir, d.Digest, fi.Size(), d.Size)
		}
		l.blobs = append(l.blobs, catalog.FileBlob(d.Digest, d.Size, d.MediaType, l.blobPath(d.Digest)))
	}
	return nil
}

func (l *layoutLoader) commit(b *catalog.Builder) error {
	for _, bl := range l.blobs {
		b.AddBlob(l.repo, bl)
	}
	for _, m := range l.manifests {
		if _, err := b.AddManifest(l.repo, m.mt, m.raw, m.tags...); err != nil {
			return err
		}
	}
	return nil
}

func loadTarball(ctx context.Context, b *catalog.Builder, path, cacheDir string, log *zap.Logger) error {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		log.Warn("skipping .tar that is not an image tarball", zap.String("file", path), zap.Error(err))
		return nil
	}
	blobDir := filepath.Join(cacheDir, "from-blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	for _, desc := range m {
		if len(desc.RepoTags) == 0 {
			log.Warn("skipping untagged image in tarball", zap.String("file", path), zap.String("config", desc.Config))
			continue
		}
		t, err := name.NewTag(desc.RepoTags[0], name.WeakValidation)
		if err != nil {
			return fmt.Errorf("tarball %s: tag %q: %w", path, desc.RepoTags[0], err)
		}
		img, err := tarball.Image(opener, &t)
		if err != nil {
			return fmt.Errorf("tarball %s: %s: %w", path, t, err)
		}
		if err := addImage(ctx, b, img, blobDir, desc.RepoTags, log); err != nil {
			return fmt.Errorf("tarball %s: %s: %w", path, t, err)
		}
	}
	return nil
}

func addImage(ctx context.Context, b *catalog.Builder, img v1.Image, blobDir string, repoTags []string, log *zap.Logger) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	var blobs []catalog.Blob
	blobs = append(blobs, catalog.DataBlob(m.Config.MediaType, cfg))
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		bl, err := copyLayer(l, m.Layers[i], blobDir)
		if err != nil {
			return err
		}
		blobs = append(blobs, bl)
	}
	for _, rt := range repoTags {
		repo, tag := SplitRef(rt)
		if !rules.ValidRepository(repo) || !reference.ValidTag(tag) {
			log.Warn("skipping unusable RepoTag", zap.String("repoTag", rt))
			continue
		}
		for _, bl := range blobs {
			b.AddBlob(repo, bl)
		}
		d, err := b.AddManifest(repo, mt, raw, tag)
		if err != nil {
			return err
		}
		log.Info("serving image from tarball", zap.String("repo", repo), zap.String("tag", tag), zap.Stringer("digest", d))
	}
	return nil
}

// copyLayer stores the compressed layer under blobDir (once), verifying it.
func copyLayer(l v1.Layer, desc v1.Descriptor, blobDir string) (catalog.Blob, error) {
	dst := filepath.Join(blobDir, desc.Digest.Hex)
	if fi, err := os.Stat(dst); err == nil && fi.Size() == desc.Size {
		return catalog.FileBlob(desc.Digest, desc.Size, desc.MediaType, dst), nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return catalog.Blob{}, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(blobDir, ".from-*")
	if err != nil {
		return catalog.Blob{}, err
	}
	defer os.Remove(tmp.Name())
	d, n, err := v1.SHA256(io.TeeReader(rc, tmp))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return catalog.Blob{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if d != desc.Digest || n != desc.Size {
		return catalog.Blob{}, fmt.Errorf("layer %s: got %s (%d bytes), want %d bytes", desc.Digest, d, n, desc.Size)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return catalog.Blob{}, err
	}
	return catalog.FileBlob(desc.Digest, desc.Size, desc.MediaType, dst), nil
}
