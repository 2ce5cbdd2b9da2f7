package main

import (
	"github.com/airlock/airlock/cmd/airlock/internal/imagetool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	var so imagetool.SourceOptions
	cmd := &cobra.Command{
		Use:   "export --list FILE -o FILE (--config FILE | --server URL | --direct)",
		Short: "Write an image list to an OCI image layout tarball",
		Long: `Resolve every reference of an image list (an index down to the platforms asked
for) and write its manifests and blobs, each once, to an OCI image layout
tarball whose index.json names every image. Through a running airlock (its
cache answers even when the upstream is down) or, with --direct, from each
reference's registry; there the upstreams: endpoint overrides of --config
apply, and a reference is fetched with the credential set of the cache rule
that covers it (else the Docker config's credentials). The file appears only
once the bundle is complete.`,
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
			return imagetool.RunExport(cmd.Context(), &so, list, out, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
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
	so.Register(fs, true)
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
			return imagetool.RunImport(cmd.Context(), cfgPath, args[0], asPushed, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "airlock configuration `FILE` (storage.dir and cache rules); required")
	cmd.Flags().BoolVar(&asPushed, "as-pushed", false, "import every image as pushed content, even where a cache rule fetches it")
	return cmd
}
