package imagetool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/airlock/airlock/internal/progress"
	"github.com/airlock/airlock/reference"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/upstream/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// RunExport is airlock bundle export: it writes the images of the list to
// the bundle file out ("-": stdout), pulled as so says, with progress on
// stderr and the summary on stdout.
func RunExport(ctx context.Context, so *SourceOptions, list, out string, stdin io.Reader, stdout, stderr io.Writer) error {
	refs, err := readList(list, stdin)
	if err != nil {
		return &UsageError{err.Error()}
	}
	src, err := so.open()
	if err != nil {
		return err
	}
	return exportTo(ctx, src, refs, so, out, stdout, stderr)
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
	n, size, err := export(ctx, src, refs, sf.Concurrency, sf.platformNote(), w, p)
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
		fmt.Fprintf(stdout, "exported %d images: %d blobs, %s to %s in %s\n", len(refs), n, progress.Human(size), path, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// export resolves every reference (n at a time), then streams each
// manifest and blob once into a bundle on w. Any failure fails the export:
// a bundle must hold every image it names.
func export(ctx context.Context, src *source, refs []string, n int, platforms string, w io.Writer, p *progress.Images) (int, int64, error) {
	all := resolveAll(ctx, src, refs, n, p)
	var errs []error
	for _, r := range all {
		if r.err != nil {
			p.Finished(r.line, r.err, "")
			errs = append(errs, fmt.Errorf("%s: %w", r.line, r.err))
		}
	}
	if len(errs) > 0 {
		return 0, 0, errors.Join(errs...)
	}
	bw, err := bundle.NewWriter(w)
	if err != nil {
		return 0, 0, err
	}
	blobs, size := 0, int64(0)
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
				p.Finished(r.line, err, "")
				return 0, 0, fmt.Errorf("%s: %w", r.line, err)
			}
			blobs++
			size += b.Size
		}
		// Children before the root, so a reader meets an index last.
		for i := len(r.img.Manifests) - 1; i >= 0; i-- {
			m := r.img.Manifests[i]
			d := digest.Digest(m.Descriptor.Digest.String())
			if err := bw.Blob(d, int64(len(m.Raw)), bytes.NewReader(m.Raw)); err != nil {
				return 0, 0, fmt.Errorf("%s: %w", r.line, err)
			}
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
	return blobs, size, bw.Close()
}

// RunImport is airlock bundle import: it imports the bundle at path ("-":
// stdin) into the storage of the configuration at cfgPath and prints what
// it loaded.
func RunImport(ctx context.Context, cfgPath, path string, asPushed bool, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	set, err := cfg.RuleSet()
	if err != nil {
		return err
	}
	rep, err := importBundle(ctx, cfg, path, stdin, importTarget(set, asPushed))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d images (%d cached under rules, %d pushed): %d blobs, %s\n", rep.Images, rep.Cached, rep.Pushed, rep.Blobs, progress.Human(rep.Bytes))
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "skipped %s: no reference name in index.json\n", s)
	}
	return nil
}

// importBundle loads a bundle into the storage of cfg. The server must not
// be running: the index is opened directly.
func importBundle(ctx context.Context, cfg *config.Config, path string, stdin io.Reader, m bundle.Mapper) (bundle.Report, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return bundle.Report{}, err
		}
		defer f.Close()
		r = f
	}
	store, err := fsstore.New(filepath.Join(cfg.Storage.Dir, "content"))
	if err != nil {
		return bundle.Report{}, err
	}
	index, err := meta.Open(filepath.Join(cfg.Storage.Dir, "meta"), zap.NewNop(), meta.Options{})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			err = fmt.Errorf("%w (is airlock serve running on %s? stop it first)", err, cfg.Storage.Dir)
		}
		return bundle.Report{}, err
	}
	rep, err := bundle.Import(ctx, r, store, index, m, time.Now())
	if cerr := index.Close(); err == nil {
		err = cerr
	}
	return rep, err
}
