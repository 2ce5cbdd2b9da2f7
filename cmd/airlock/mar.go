package main

import (
	"context"
	"fmt"
	"github.com/airlock/airlock/cmd/airlock/internal/logging"
	"github.com/airlock/airlock/internal/progress"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
)

// marFaultHelp documents --fault and the emulator's control API.
const marFaultHelp = `
Faults (--fault, repeatable; comma-separated key=value):
  match:   kind=manifest|blob|blob-data|token|referrers|tags|catalog|ping|other|any
           method=GET  repo=GLOB  repo-re=REGEXP  digest=sha256:...
  actions: delay=2s          wait before the response header
           bw=1MiB           cap the body at this many bytes per second
           status=503        answer this error (500, 503, 429, ...) instead
           rate=0.5          error on a fraction of matches (default 1 with status);
                             deterministic: the k-th match errors iff
                             ceil(k*rate) > ceil((k-1)*rate), so the first always does
           retry-after=5     Retry-After seconds sent with the error
           cut=1000          send 1000 body bytes, then close the connection
           corrupt           flip body bytes (offsets 0, 64KiB, ...), keep length and digest
           unreachable       reset the connection without answering
           count=1           apply to the first N matching requests only

Control API on the registry listener (no token, not counted, never faulted):
  GET /_mar/stats, POST /_mar/stats/reset, GET|POST|PUT|DELETE /_mar/faults[/ID],
  GET /_mar/images. POST /_mar/faults takes a JSON fault, a spec string, or an
  array of either. "The fetch" of a blob is its GET kind=blob-data.`

func marCmd() *cobra.Command {
	var (
		cfg                  mar.Config
		scale, logLevel      string
		from, faults, extras []string
	)
	cmd := &cobra.Command{
		Use:   "mar",
		Short: "Run the MAR emulator (upstream for labs, tests, bench)",
		Long: `Serve a read-only emulation of Microsoft Artifact Registry (MAR): the images
and artifacts an AKS node pulls at bootstrap, generated deterministically from
--seed (same seed, same digests on every machine with the same Go version).
GET /v2/... needs a bearer token from /oauth2/token (anonymous, like MAR);
blob GETs answer 307 to the data listener (the CDN), which needs no token.
` + marFaultHelp,
		Example: `  airlock mar --listen 127.0.0.1:6000
  # serve an OCI layout too, and cut the first blob download after 1000 bytes
  airlock mar --from ./layouts --fault 'kind=blob-data,cut=1000,count=1'
  # throttle half the manifest GETs
  airlock mar --fault 'kind=manifest,status=429,retry-after=2,rate=0.5'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Scale, cfg.From = catalog.Scale(scale), from
			if cfg.Scale != catalog.ScaleSmall && cfg.Scale != catalog.ScaleFull {
				return usagef("--scale %q: want small or full", scale)
			}
			if cfg.Catalog != catalog.NameAKS && cfg.Catalog != catalog.NameNone {
				return usagef("--catalog %q: want aks or none", cfg.Catalog)
			}
			for _, spec := range faults {
				f, err := fault.Parse(spec)
				if err != nil {
					return usagef("--fault %v", err)
				}
				cfg.Faults = append(cfg.Faults, f)
			}
			for _, spec := range extras {
				e, err := catalog.ParseExtra(spec)
				if err != nil {
					return usagef("--extra: %v", err)
				}
				cfg.Extra = append(cfg.Extra, e)
			}
			level, err := zapcore.ParseLevel(logLevel)
			if err != nil {
				return usagef("--log-level: %v", err)
			}
			return runMar(cmd.Context(), cfg, level, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:6000", "registry `address`")
	fs.StringVar(&cfg.DataListen, "data-listen", "127.0.0.1:0", "data (CDN) listener `address` for redirected blob GETs")
	fs.StringVar(&cfg.Catalog, "catalog", catalog.NameAKS, "generated catalog: aks or none")
	fs.StringVar(&scale, "scale", string(catalog.ScaleSmall), "layer sizes: small (a few MiB) or full (hundreds of MiB)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "content seed")
	fs.StringArrayVar(&from, "from", nil, "also serve OCI layouts and docker-save/crane tarballs under `DIR` (repeatable)")
	fs.StringVar(&cfg.CacheDir, "cache-dir", "", "generated-layer cache root (default <tmp>/airlock-mar)")
	fs.StringArrayVar(&faults, "fault", nil, "inject a fault `SPEC`, see below (repeatable)")
	fs.StringArrayVar(&extras, "extra", nil, "add a generated linux/amd64 image `REPO:TAG=SIZE[,SIZE...]`, one incompressible layer per size (repeatable)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// runMar serves the emulator until ctx ends.
func runMar(ctx context.Context, cfg mar.Config, level zapcore.Level, stdout, stderr io.Writer) error {
	log := logging.Console(stderr, level)
	defer log.Sync() //nolint:errcheck // stderr

	gen := progress.NewTask(stderr, fmt.Sprintf("generating the %s catalog", cfg.Scale))
	cfg.Progress = gen.Update
	srv, err := mar.New(cfg, log)
	if err != nil {
		return &usageError{err.Error()}
	}
	t0 := time.Now()
	err = srv.Start(ctx)
	gen.Close()
	if err != nil {
		return err
	}
	c := srv.Catalog()
	fmt.Fprintf(stdout, "airlock mar: registry %s data http://%s (%d repos, %d tags, %d blobs, %.1f MiB, ready in %v)\n",
		srv.URL(), srv.DataAddr(), len(c.Repos()), len(c.Images()), len(c.Blobs()),
		float64(c.TotalBlobSize())/(1<<20), time.Since(t0).Round(time.Millisecond))
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
