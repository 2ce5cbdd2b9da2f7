package bundle

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/manifest"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Target is where an image of a bundle goes.
type Target struct {
	Repo   string      // local repository
	Tag    string      // "" when the reference names a digest
	Origin meta.Origin // OriginCache: as if pulled through its rule; OriginPush: as if pushed
}

// Mapper says where the image named ref (the bundle's ref.name annotation)
// goes.
type Mapper func(ref string) (Target, error)

// Store is what import needs of the content store: Delete removes the
// blobs of a refused import.
type Store interface {
	content.Ingester
	content.Provider
	content.Deleter
}

// Report is what an import loaded.
type Report struct {
	Images, Cached, Pushed int
	// Blobs are the blobs of the tarball (each once), Manifests the
	// distinct manifests among them that the images use.
	Manifests, Blobs int
	Bytes            int64 // bytes of the blobs
	// Skipped lists index.json entries without a reference name.
	Skipped []string
}

// maxIndex bounds index.json and oci-layout.
const maxIndex = 16 << 20

// Import reads a bundle from r: every blob is verified against its digest
// as it streams and written to store unless store holds it already; then
// each image named in index.json is checked complete (every manifest it
// lists and every blob they need, except the platforms left out of an
// index) and linked under the repository and tag map gives it. Nothing is
// linked unless every image maps and is complete.
//
// A refused import (a blob that does not verify, a truncated or malformed
// tarball, an incomplete image, a reference map refuses, ctx ended, an
// index write failed) leaves store and index as they were: the blobs it
// committed that store did not hold are deleted and the index records it
// wrote are put back; the error says so. The caller keeps other writers
// out of store and index while Import runs (the CLI holds the index's
// lock, which airlock serve takes too).
func Import(ctx context.Context, r io.Reader, store Store, index Index, mapRef Mapper, now time.Time) (Report, error) {
	j := &journal{store: store, index: index}
	rep, err := j.run(ctx, r, mapRef, now)
	if err == nil {
		return rep, nil
	}
	if uerr := j.rollback(context.WithoutCancel(ctx)); uerr != nil {
		return rep, fmt.Errorf("%w; undoing the partial import failed, some of it remains: %w", err, uerr)
	}
	return rep, fmt.Errorf("%w (nothing was imported)", err)
}

// run is Import without the rollback; j records what it changes.
func (j *journal) run(ctx context.Context, r io.Reader, mapRef Mapper, now time.Time) (Report, error) {
	store := j.store
	var rep Report
	var idx *ocispec.Index
	layout := false
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("bundle: %w", err)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("%w: %v", ErrBadBundle, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case h.Typeflag == tar.TypeDir:
		case name == ocispec.ImageLayoutFile:
			var l ocispec.ImageLayout
			if err := json.NewDecoder(io.LimitReader(tr, maxIndex)).Decode(&l); err != nil || l.Version != ocispec.ImageLayoutVersion {
				return rep, fmt.Errorf("%w: oci-layout version %q", ErrBadBundle, l.Version)
			}
			layout = true
		case name == ocispec.ImageIndexFile:
			idx = &ocispec.Index{}
			if err := json.NewDecoder(io.LimitReader(tr, maxIndex)).Decode(idx); err != nil {
				return rep, fmt.Errorf("%w: index.json: %v", ErrBadBundle, err)
			}
		case strings.HasPrefix(name, "blobs/") && h.Typeflag == tar.TypeReg:
			parts := strings.Split(name, "/")
			if len(parts) != 3 {
				return rep, fmt.Errorf("%w: unexpected entry %q", ErrBadBundle, name)
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
			if err := d.Validate(); err != nil {
				return rep, fmt.Errorf("%w: entry %q: %v", ErrBadBundle, name, err)
			}
			if err := j.blob(ctx, d, h.Size, ctxReader{ctx, tr}); err != nil {
				return rep, err
			}
			rep.Blobs++
			rep.Bytes += h.Size
		}
	}
	if !layout || idx == nil {
		return rep, fmt.Errorf("%w: oci-layout or index.json missing", ErrBadBundle)
	}
	var plans []plan
	for _, desc := range idx.Manifests {
		ref := desc.Annotations[AnnotationRefName]
		if ref == "" {
			ref = desc.Annotations[AnnotationContainerdName]
		}
		if ref == "" {
			rep.Skipped = append(rep.Skipped, desc.Digest.String())
			continue
		}
		t, err := mapRef(ref)
		if err != nil {
			return rep, fmt.Errorf("bundle: %s: %w", ref, err)
		}
		p := plan{ref: ref, target: t}
		if err := p.walk(ctx, store, desc.Digest, desc.MediaType, desc.Size, true); err != nil {
			return rep, fmt.Errorf("bundle: %s: %w", ref, err)
		}
		plans = append(plans, p)
	}
	manifests := map[digest.Digest]bool{}
	for _, p := range plans {
		if err := p.link(ctx, j, now); err != nil {
			return rep, fmt.Errorf("bundle: %s: %w", p.ref, err)
		}
		rep.Images++
		for _, m := range p.manifests {
			manifests[m.d] = true
		}
		rep.Manifests = len(manifests)
		if p.target.Origin == meta.OriginPush {
			rep.Pushed++
		} else {
			rep.Cached++
		}
	}
	return rep, nil
}

// blob loads one blob of the bundle: a blob store holds already is only
// verified, not written again; a new one is ingested, and remembered so a
// refused import deletes it.
func (j *journal) blob(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	_, err := j.store.Stat(ctx, d)
	switch {
	case err == nil:
		return verify(d, size, r)
	case !errors.Is(err, content.ErrNotFound):
		return fmt.Errorf("bundle: blob %s: %w", d, err)
	}
	// Remembered before the write: a commit that fails after its rename
	// may still leave the blob.
	j.blobs = append(j.blobs, d)
	return ingest(ctx, j.store, d, size, r)
}

// ingest streams one blob into the store; Commit verifies size and digest.
func ingest(ctx context.Context, store Store, d digest.Digest, size int64, r io.Reader) error {
	w, err := store.Ingest(ctx, d, size)
	if err != nil {
		return fmt.Errorf("bundle: blob %s: %w", d, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return readErr(d, err)
	}
	if _, err := w.Commit(ctx); err != nil {
		return fmt.Errorf("bundle: blob %s does not verify: %w", d, err)
	}
	return nil
}

// verify reads a blob's bytes and checks them against its size and digest
// as Commit would, without storing them. d's algorithm is available (the
// caller validated d).
func verify(d digest.Digest, size int64, r io.Reader) error {
	h := d.Algorithm().Hash()
	n, err := io.Copy(h, r)
	if err != nil {
		return readErr(d, err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); n != size || got != d {
		return fmt.Errorf("bundle: blob %s does not verify: %w", d,
			&content.MismatchError{WantDigest: d, GotDigest: got, WantSize: size, GotSize: n})
	}
	return nil
}

// readErr is the error of reading blob d from the tarball.
func readErr(d digest.Digest, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: it ends inside blob %s (truncated?): %w", ErrBadBundle, d, err)
	}
	return fmt.Errorf("bundle: blob %s: %w", d, err)
}

// ctxReader ends a read when ctx ends, so a cancelled import stops inside
// a large blob.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// plan is one image to link: its manifests (root last) and blobs.
type plan struct {
	ref       string
	target    Target
	manifests []planned
	blobs     []ocispec.Descriptor
}

type planned struct {
	d   digest.Digest
	rec meta.Manifest
}

// walk checks that manifest d and what it needs are stored; an index's
// children that are not in the bundle are platforms left out.
func (p *plan) walk(ctx context.Context, store Store, d digest.Digest, mediaType string, size int64, root bool) error {
	info, err := store.Stat(ctx, d)
	if err != nil {
		if !root && errors.Is(err, content.ErrNotFound) {
			return nil // a platform not bundled
		}
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	if size > 0 && info.Size != size {
		return fmt.Errorf("manifest %s: %d bytes, index.json says %d", d, info.Size, size)
	}
	body, err := content.ReadAll(ctx, store, d)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(body, mediaType)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	for _, c := range m.Manifests {
		if err := p.walk(ctx, store, c.Digest, c.MediaType, c.Size, false); err != nil {
			return err
		}
	}
	for _, b := range m.Blobs() {
		bi, err := store.Stat(ctx, b.Digest)
		if err != nil {
			return fmt.Errorf("incomplete image: blob %s of manifest %s: %w", b.Digest, d, err)
		}
		if bi.Size != b.Size {
			return fmt.Errorf("blob %s: %d bytes, manifest %s says %d", b.Digest, bi.Size, d, b.Size)
		}
		p.blobs = append(p.blobs, b)
	}
	rec := meta.Manifest{MediaType: m.MediaType, Size: info.Size, ArtifactType: m.ArtifactType, Refs: m.Refs(), Origin: p.target.Origin}
	if m.Subject != nil {
		rec.Subject, rec.Annotations = m.Subject.Digest, m.Annotations
	}
	if rec.MediaType == "" {
		return fmt.Errorf("manifest %s: no media type", d)
	}
	p.manifests = append(p.manifests, planned{d: d, rec: rec})
	return nil
}

// link records the image in the index: blobs, then children, then the
// root with its tag. j remembers each record before it is written.
func (p *plan) link(ctx context.Context, j *journal, now time.Time) error {
	t := p.target
	if err := j.repo(ctx, t.Repo); err != nil {
		return err
	}
	for _, b := range p.blobs {
		if err := j.blobLink(ctx, t.Repo, b.Digest); err != nil {
			return err
		}
		if err := j.index.LinkBlob(ctx, t.Repo, b.Digest, meta.Blob{Size: b.Size, Origin: t.Origin, Added: now}); err != nil {
			return err
		}
	}
	for i, m := range p.manifests {
		m.rec.Added = now
		tag := ""
		var tr meta.Tag
		if i == len(p.manifests)-1 && t.Tag != "" {
			tag = t.Tag
			tr = meta.Tag{Digest: m.d, MediaType: m.rec.MediaType, Size: m.rec.Size, FetchedAt: now, Origin: t.Origin}
			if err := j.tag(ctx, t.Repo, tag); err != nil {
				return err
			}
		}
		if err := j.manifest(ctx, t.Repo, m.d); err != nil {
			return err
		}
		if err := j.index.PutManifest(ctx, t.Repo, m.d, m.rec, tag, tr); err != nil {
			return err
		}
	}
	return nil
}
