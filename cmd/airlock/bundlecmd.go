package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/upstream/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// runBundle is `airlock bundle export|import`.
func runBundle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "export":
			return runExport(ctx, args[1:], stdout, stderr)
		case "import":
			return runImport(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "airlock bundle: usage: airlock bundle export --list FILE -o bundle.tar ... | airlock bundle import --config FILE bundle.tar")
	return 2
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bundle export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.String("list", "", "image list file, one reference per line (- for standard input)")
	out := fs.String("o", "", "bundle file to write (- for standard output)")
	var sf sourceFlags
	sf.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "airlock bundle export: usage: airlock bundle export --list FILE -o bundle.tar (--config FILE | --server URL | --direct) [--platform os/arch,...]")
		return 2
	}
	refs, err := readList(*list)
	if err == nil {
		var src *source
		if src, err = sf.open(); err == nil {
			err = exportTo(ctx, src, refs, &sf, *out, stdout, stderr)
		} else {
			fmt.Fprintf(stderr, "airlock bundle export: %v\n", err)
			return 2
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "airlock bundle export: %v\n", err)
		return 1
	}
	return 0
}

// exportTo writes the bundle to path through a temporary file, renamed
// only once the bundle is complete.
func exportTo(ctx context.Context, src *source, refs []string, sf *sourceFlags, path string, stdout, stderr io.Writer) error {
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
	p := newProgress(stderr, "export", len(refs))
	n, size, err := export(ctx, src, refs, sf.concurrency, sf.platformNote(), w, p)
	p.close()
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
		fmt.Fprintf(stdout, "exported %d images: %d blobs, %s to %s in %s\n", len(refs), n, human(size), path, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// export resolves every reference (n at a time), then streams each
// manifest and blob once into a bundle on w. Any failure fails the export:
// a bundle must hold every image it names.
func export(ctx context.Context, src *source, refs []string, n int, platforms string, w io.Writer, p *progress) (int, int64, error) {
	all := resolveAll(ctx, src, refs, n, p)
	var errs []error
	for _, r := range all {
		if r.err != nil {
			p.finished(r.line, r.err, "")
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
				p.finished(r.line, err, "")
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
		line, _ := parseImageRef(r.line)
		bw.Image(line.String(), root, note)
		p.finished(r.line, nil, fmt.Sprintf("%s %d blobs %s", r.img.Root.Digest, len(r.img.Blobs), human(r.img.Size())))
	}
	return blobs, size, bw.Close()
}

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bundle import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "airlock configuration (storage.dir and cache rules)")
	asPushed := fs.Bool("as-pushed", false, "import every image as pushed content, even where a cache rule fetches it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "airlock bundle import: usage: airlock bundle import --config FILE [--as-pushed] bundle.tar")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "airlock bundle import: %v\n", err)
		return 2
	}
	set, err := cfg.RuleSet()
	if err != nil {
		fmt.Fprintf(stderr, "airlock bundle import: %v\n", err)
		return 2
	}
	rep, err := importBundle(ctx, cfg, fs.Arg(0), importTarget(set, *asPushed))
	if err != nil {
		fmt.Fprintf(stderr, "airlock bundle import: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d images (%d cached under rules, %d pushed): %d blobs, %s\n", rep.Images, rep.Cached, rep.Pushed, rep.Blobs, human(rep.Bytes))
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "skipped %s: no reference name in index.json\n", s)
	}
	return 0
}

// importBundle loads a bundle into the storage of cfg. The server must not
// be running: the index is opened directly.
func importBundle(ctx context.Context, cfg *config.Config, path string, m bundle.Mapper) (bundle.Report, error) {
	var r io.Reader = os.Stdin
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
	index, err := badgermeta.Open(filepath.Join(cfg.Storage.Dir, "meta"), zap.NewNop(), badgermeta.Options{})
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
