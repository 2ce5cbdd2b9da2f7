package imagetool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/internal/progress"
	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/upstream/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RunExport is airlock bundle export: it writes the images of the list to
// the bundle file out ("-": stdout), pulled as so says, with progress on
// stderr and the summary on stdout.
func RunExport(ctx context.Context, so *SourceOptions, list, out string, stdin io.Reader, stdout, stderr io.Writer) error {
	refs, err := readList(list, stdin)
	if err != nil {
		return &UsageError{err.Error()}
	}
	src, err := so.start(ctx)
	if err != nil {
		return err
	}
	return exportTo(ctx, src, refs, so, out, stdout, stderr)
}

// counts are what a bundle holds: its images, the distinct manifests and
// other blobs (configs, layers) of its blobs/ directory, and their bytes.
type counts struct {
	images, manifests, blobs int
	bytes                    int64
}

// String says what the counts are, the same way for export and import.
func (c counts) String() string { return fmt.Sprintf("%d images: %s", c.images, c.contents()) }

// contents are the counts of the blobs/ directory.
func (c counts) contents() string {
	return fmt.Sprintf("%d manifests, %d blobs (%s)", c.manifests, c.blobs, progress.Human(c.bytes))
}

// exportTo writes the bundle to path through a temporary file, renamed
// only once the bundle is complete.
func exportTo(ctx context.Context, src *source, refs []string, sf *SourceOptions, path string, stdout, stderr io.Writer) error {
	var w io.Writer = stdout
	var f *os.File
	if path != "-" {
		var err error
		f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w = f
	}
	start := time.Now()
	p := progress.NewImages(stderr, "export", len(refs))
	c, err := export(ctx, src, refs, sf.Concurrency, sf.platformNote(), w, p)
	p.Close()
	if err != nil {
		return err
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exported %s to %s in %s\n", c, path, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// export resolves every reference (n at a time), then streams each
// manifest and blob once into a bundle on w. Any failure fails the export:
// a bundle must hold every image it names. Images that do not resolve are
// reported on p, each once; the error then says how many.
func export(ctx context.Context, src *source, refs []string, n int, platforms string, w io.Writer, p *progress.Images) (counts, error) {
	all := resolveAll(ctx, src, refs, n, p)
	failed := 0
	for _, r := range all {
		if r.err != nil {
			p.Finished(r.line, r.err, "")
			failed++
		}
	}
	if failed > 0 {
		return counts{}, fmt.Errorf("%d of %d images could not be resolved (FAIL lines above); no bundle written", failed, len(refs))
	}
	bw, err := bundle.NewWriter(w)
	if err != nil {
		return counts{}, err
	}
	c := counts{images: len(all)}
	for _, r := range all {
		for _, b := range r.img.Blobs {
			d := digest.Digest(b.Digest.String())
			if bw.Has(d) {
				continue
			}
			pr, pw := io.Pipe()
			fetched := make(chan struct{})
			go func() {
				defer close(fetched)
				_, err := images.Fetch(ctx, src.puller, r.ref.Context(), b, io.MultiWriter(pw, p))
				pw.CloseWithError(err)
			}()
			err := bw.Blob(d, b.Size, pr)
			pr.CloseWithError(errors.New("bundle write failed"))
			<-fetched
			if err != nil {
				return counts{}, fmt.Errorf("%s: %w", r.line, err)
			}
			c.blobs++
			c.bytes += b.Size
		}
		// Children before the root, so a reader meets an index last.
		for i := len(r.img.Manifests) - 1; i >= 0; i-- {
			m := r.img.Manifests[i]
			d := digest.Digest(m.Descriptor.Digest.String())
			if bw.Has(d) {
				continue
			}
			if err := bw.Blob(d, int64(len(m.Raw)), bytes.NewReader(m.Raw)); err != nil {
				return counts{}, fmt.Errorf("%s: %w", r.line, err)
			}
			c.manifests++
			c.bytes += int64(len(m.Raw))
		}
		root := ocispec.Descriptor{MediaType: string(r.img.Root.MediaType), Digest: digest.Digest(r.img.Root.Digest.String()), Size: r.img.Root.Size}
		note := ""
		if r.img.Root.MediaType.IsIndex() {
			note = platforms
		}
		line, _ := reference.Parse(r.line) // parsed once already by src.reference
		bw.Image(line.String(), root, note)
		p.Finished(r.line, nil, fmt.Sprintf("%s %d blobs %s", r.img.Root.Digest, len(r.img.Blobs), progress.Human(r.img.Size())))
	}
	return c, bw.Close()
}
