package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
)

// bundleCmd is `airlock bundle export|import`.
func bundleCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "bundle",
		Short: "Export an image list to an OCI layout tarball, or import one (air gap)",
		Long: `Move images across an air gap: bundle export writes an image list to an OCI
image layout tarball (through a running airlock, or --direct from the
registries); bundle import loads one into a stopped airlock's storage, verifying
every digest.`,
		Example: `  airlock bundle export --config airlock.yaml --list images.txt --platform linux/amd64 -o bundle.tar
  airlock bundle import --config airlock.yaml bundle.tar`,
	})
	cmd.AddCommand(exportCmd(), importCmd())
	return cmd
}

func exportCmd() *cobra.Command {
	var list, out string
	var sf sourceFlags
	cmd := &cobra.Command{
		Use:   "export --list FILE -o FILE (--config FILE | --server URL | --direct)",
		Short: "Write an image list to an OCI image layout tarball",
		Long: `Resolve every reference of an image list (an index down to the platforms asked
for) and write its manifests and blobs, each once, to an OCI image layout
tarball whose index.json names every image. Through a running airlock (its
cache answers even when the upstream is down) or, with --direct, from each
reference's registry; there the upstreams: endpoint overrides of --config
apply. The file appears only once the bundle is complete.`,
		Example: `  airlock bundle export --config airlock.yaml --list images.txt --platform linux/amd64 -o bundle.tar
  # straight from the registries (their endpoints as --config overrides them)
  airlock bundle export --direct --config airlock.yaml --list images.txt -o bundle.tar
  # to standard output
  airlock bundle export --server http://127.0.0.1:5000 --list images.txt -o - | ssh gateway 'cat > bundle.tar'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "list", "output"); err != nil {
				return err
			}
			refs, err := readList(list, cmd.InOrStdin())
			if err != nil {
				return &usageError{err.Error()}
			}
			src, err := sf.open()
			if err != nil {
				return err
			}
			return exportTo(cmd.Context(), src, refs, &sf, out, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&list, "list", "", "image list `FILE`, one reference per line (- for standard input); required")
	fs.StringVarP(&out, "output", "o", "", "bundle `FILE` to write (- for standard output); required")
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "o" { // --o, as Go's flag package took -o
			name = "output"
		}
		return pflag.NormalizedName(name)
	})
	sf.register(fs, true)
	return cmd
}

func importCmd() *cobra.Command {
	var cfgPath string
	var asPushed bool
	cmd := &cobra.Command{
		Use:   "import --config FILE [--as-pushed] BUNDLE",
		Short: "Load an OCI image layout tarball into a stopped airlock",
		Long: `Load a bundle into the storage of --config, with airlock stopped: every blob is
verified against its digest as it streams, then each image named in index.json
is checked complete and linked. An image a cache rule fetches goes under that
rule, as cached content (served stale when the upstream is unreachable); the
others, or all with --as-pushed, as pushed content in the repository named
without its host. A bundle that does not verify links nothing.`,
		Example: `  airlock bundle import --config airlock.yaml bundle.tar
  airlock bundle import --config airlock.yaml --as-pushed bundle.tar
  ssh gateway 'cat bundle.tar' | airlock bundle import --config airlock.yaml -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("give one bundle file (- for standard input) (see 'airlock bundle import --help')")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "config"); err != nil {
				return err
			}
			return runImport(cmd.Context(), cfgPath, args[0], asPushed, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "airlock configuration `FILE` (storage.dir and cache rules); required")
	cmd.Flags().BoolVar(&asPushed, "as-pushed", false, "import every image as pushed content, even where a cache rule fetches it")
	return cmd
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

// runImport imports the bundle at path ("-": stdin) into the storage of
// the configuration at cfgPath.
func runImport(ctx context.Context, cfgPath, path string, asPushed bool, stdin io.Reader, stdout, stderr io.Writer) error {
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
	fmt.Fprintf(stdout, "imported %d images (%d cached under rules, %d pushed): %d blobs, %s\n", rep.Images, rep.Cached, rep.Pushed, rep.Blobs, human(rep.Bytes))
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
