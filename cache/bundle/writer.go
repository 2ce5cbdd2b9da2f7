// Package bundle reads and writes air-gap bundles: OCI image layout
// tarballs (oci-layout, index.json naming each image with the
// org.opencontainers.image.ref.name annotation, blobs/<alg>/<hex>). Both
// directions stream: no layer is ever held in memory. Import verifies
// every digest and loads a bundle into airlock's content store and index,
// so that an air-gapped site can be seeded from a disk.
package bundle

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations written on index.json entries. RefName carries the full
// reference (registry host, repository, tag), which containerd and most
// layout tools accept; ContainerdName repeats it for `ctr import`.
const (
	AnnotationRefName        = ocispec.AnnotationRefName
	AnnotationContainerdName = "io.containerd.image.name"
	// AnnotationPlatforms lists the platforms of an index the bundle holds
	// ("" or absent: all of them).
	AnnotationPlatforms = "io.airlock.bundle.platforms"
)

// ErrBadBundle means the input is not a bundle Import can load.
var ErrBadBundle = errors.New("bundle: not a valid OCI image layout tarball")

// Writer writes a bundle to a stream. Blobs are written as they come; the
// index is written by Close.
type Writer struct {
	tw     *tar.Writer
	seen   map[digest.Digest]bool
	dirs   map[string]bool
	images []ocispec.Descriptor
	mtime  time.Time
}

// NewWriter starts a bundle on w.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := &Writer{tw: tar.NewWriter(w), seen: map[digest.Digest]bool{}, dirs: map[string]bool{}, mtime: time.Unix(0, 0)}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := bw.file(ocispec.ImageLayoutFile, layout); err != nil {
		return nil, err
	}
	return bw, nil
}

func (w *Writer) header(name string, size int64) error {
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: w.mtime, Format: tar.FormatPAX})
}

func (w *Writer) dir(name string) error {
	if w.dirs[name] {
		return nil
	}
	w.dirs[name] = true
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: w.mtime, Format: tar.FormatPAX})
}

func (w *Writer) file(name string, b []byte) error {
	if err := w.header(name, int64(len(b))); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if _, err := w.tw.Write(b); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Has reports whether blob d is in the bundle already.
func (w *Writer) Has(d digest.Digest) bool { return w.seen[d] }

// Blob adds blob d of size bytes, read from r and verified on the way. A
// blob already added is skipped (r is not read). After an error the
// bundle is broken: abandon it.
func (w *Writer) Blob(d digest.Digest, size int64, r io.Reader) error {
	if w.seen[d] {
		return nil
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("bundle: blob %q: %w", d, err)
	}
	alg := "blobs/" + d.Algorithm().String() + "/"
	if err := w.dir("blobs/"); err != nil {
		return err
	}
	if err := w.dir(alg); err != nil {
		return err
	}
	if err := w.header(alg+d.Encoded(), size); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	v := d.Verifier()
	n, err := io.Copy(w.tw, io.TeeReader(io.LimitReader(r, size+1), v))
	if err != nil {
		return fmt.Errorf("bundle: blob %s: %w", d, err)
	}
	if n != size || !v.Verified() {
		return fmt.Errorf("bundle: blob %s: got %d bytes (want %d) or a wrong digest", d, n, size)
	}
	w.seen[d] = true
	return nil
}

// Image names a root manifest (already added as a blob) in index.json
// under ref, e.g. mcr.microsoft.com/oss/kubernetes/pause:3.10. platforms,
// when not empty, says which platforms of an index are included.
func (w *Writer) Image(ref string, desc ocispec.Descriptor, platforms string) {
	desc.Annotations = map[string]string{AnnotationRefName: ref, AnnotationContainerdName: ref}
	if platforms != "" {
		desc.Annotations[AnnotationPlatforms] = platforms
	}
	desc.Platform = nil
	w.images = append(w.images, desc)
}

// Close writes index.json and ends the tarball (not the underlying
// writer).
func (w *Writer) Close() error {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: w.images}
	idx.SchemaVersion = 2
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := w.file(ocispec.ImageIndexFile, b); err != nil {
		return err
	}
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}
