package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
)

const marUsage = `usage: airlock mar [flags]

Serve a read-only emulation of Microsoft Artifact Registry (MAR): the images
and artifacts an AKS node pulls at bootstrap, generated deterministically from
--seed (same seed, same digests on every machine with the same Go version).
GET /v2/... needs a bearer token from /oauth2/token (anonymous, like MAR);
blob GETs answer 307 to the data listener (the CDN), which needs no token.

Flags:
%s
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
  e.g. --fault 'kind=blob-data,cut=1000,count=1' --fault 'kind=manifest,status=429,retry-after=2,rate=0.5'

Control API on the registry listener (no token, not counted, never faulted):
  GET /_mar/stats, POST /_mar/stats/reset, GET|POST|PUT|DELETE /_mar/faults[/ID],
  GET /_mar/images. POST /_mar/faults takes a JSON fault, a spec string, or an
  array of either. "The fetch" of a blob is its GET kind=blob-data.
`

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runMar(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("airlock mar", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		cfg                  mar.Config
		scale, logLevel      string
		from, faults, extras listFlag
	)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:6000", "registry `address`")
	fs.StringVar(&cfg.DataListen, "data-listen", "127.0.0.1:0", "data (CDN) listener `address` for redirected blob GETs")
	fs.StringVar(&cfg.Catalog, "catalog", catalog.NameAKS, "generated catalog: aks or none")
	fs.StringVar(&scale, "scale", string(catalog.ScaleSmall), "layer sizes: small (a few MiB) or full (hundreds of MiB)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "content seed")
	fs.Var(&from, "from", "also serve OCI layouts and docker-save/crane tarballs under `DIR` (repeatable)")
	fs.StringVar(&cfg.CacheDir, "cache-dir", "", "generated-layer cache root (default <tmp>/airlock-mar)")
	fs.Var(&faults, "fault", "inject a fault `SPEC`, see below (repeatable)")
	fs.Var(&extras, "extra", "add a generated linux/amd64 image `REPO:TAG=SIZE[,SIZE...]`, one incompressible layer per size (repeatable)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, marUsage, flagDefaults(fs))
			return 0
		}
		fmt.Fprintf(stderr, "airlock mar: %v (see airlock mar --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "airlock mar: unexpected argument %q (see airlock mar --help)\n", fs.Arg(0))
		return 2
	}
	cfg.Scale, cfg.From = catalog.Scale(scale), from
	if cfg.Scale != catalog.ScaleSmall && cfg.Scale != catalog.ScaleFull {
		fmt.Fprintf(stderr, "airlock mar: --scale %q: want small or full\n", scale)
		return 2
	}
	if cfg.Catalog != catalog.NameAKS && cfg.Catalog != catalog.NameNone {
		fmt.Fprintf(stderr, "airlock mar: --catalog %q: want aks or none\n", cfg.Catalog)
		return 2
	}
	for _, spec := range faults {
		f, err := fault.Parse(spec)
		if err != nil {
			fmt.Fprintf(stderr, "airlock mar: --fault %v\n", err)
			return 2
		}
		cfg.Faults = append(cfg.Faults, f)
	}
	for _, spec := range extras {
		e, err := catalog.ParseExtra(spec)
		if err != nil {
			fmt.Fprintf(stderr, "airlock mar: --extra: %v\n", err)
			return 2
		}
		cfg.Extra = append(cfg.Extra, e)
	}
	level, err := zapcore.ParseLevel(logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "airlock mar: --log-level: %v\n", err)
		return 2
	}
	log := consoleLogger(stderr, level)
	defer log.Sync() //nolint:errcheck // stderr

	srv, err := mar.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "airlock mar: %v\n", err)
		return 2
	}
	t0 := time.Now()
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "airlock mar: %v\n", err)
		return 1
	}
	c := srv.Catalog()
	fmt.Fprintf(stdout, "airlock mar: registry %s data http://%s (%d repos, %d tags, %d blobs, %.1f MiB, ready in %v)\n",
		srv.URL(), srv.DataAddr(), len(c.Repos()), len(c.Images()), len(c.Blobs()),
		float64(c.TotalBlobSize())/(1<<20), time.Since(t0).Round(time.Millisecond))
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		fmt.Fprintf(stderr, "airlock mar: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func flagDefaults(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// consoleLogger writes console-encoded logs at level and above to w.
func consoleLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core)
}
