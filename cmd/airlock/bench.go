package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/bench"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

const benchUsage = `usage: airlock bench [flags]

Start the MAR emulator and each target fresh for every run on 127.0.0.1 and
drive simulated AKS nodes at them (go-containerregistry clients pulling like
containerd: manifests first, then 3 blobs at once). Targets are interleaved
within each run and summarised as the median of --runs.

Scenarios: cold-one, warm, storm, ranges, flaky, upstream-slow (or all).
Targets:   airlock (this binary, "serve", as a child process),
           distribution (distribution v3 proxy, bench/cmd/distproxy, a child process),
           direct (the emulator itself, no cache).
The distribution target runs --distproxy, else "distproxy" next to this
binary (make bench builds bin/distproxy), else it is built with "go build"
into the user cache directory (needs the source tree and a Go toolchain).

Writes DIR/results.json and DIR/report.html and prints a table.

Flags:
%s`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return benchMain(ctx, args, stdout, stderr, nil)
}

// benchMain is runBench with extra environment for the airlock child (tests
// re-execute their own binary as airlock).
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer, childEnv []string) int {
	fs := flag.NewFlagSet("airlock bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		opts                                bench.Options
		scenario, targets, scale, largeSize string
		distproxy, cpuProfile, logLevel     string
		timeout                             time.Duration
		serveBare                           bool
	)
	fs.StringVar(&scenario, "scenario", "all", "scenario `NAME`s, comma-separated, or all")
	fs.IntVar(&opts.Nodes, "nodes", 100, "simulated nodes in storm and flaky")
	fs.StringVar(&opts.Catalog, "catalog", catalog.NameAKS, "emulator catalog (aks)")
	fs.StringVar(&scale, "scale", string(catalog.ScaleSmall), "catalog layer sizes: small or full")
	fs.StringVar(&targets, "targets", strings.Join(bench.Targets(), ","), "targets, comma-separated")
	fs.IntVar(&opts.Runs, "runs", 5, "runs per scenario and target (median reported)")
	fs.StringVar(&opts.Out, "out", "bench-results", "output `DIR` for results.json and report.html")
	fs.StringVar(&opts.Minor, "kubernetes", "1.31", "Kubernetes minor version of the bootstrap set")
	fs.Uint64Var(&opts.Seed, "seed", 1, "catalog seed")
	fs.StringVar(&opts.CacheDir, "cache-dir", "", "emulator layer cache (default <tmp>/airlock-mar)")
	fs.StringVar(&largeSize, "large-size", "128MiB", "size of the ranges blob")
	fs.StringVar(&distproxy, "distproxy", "", "distproxy binary for the distribution target")
	fs.DurationVar(&timeout, "run-timeout", 10*time.Minute, "bound on one scenario run on one target")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (the clients) to `FILE`")
	fs.StringVar(&logLevel, "log-level", "warn", "bench log level (stderr)")
	fs.BoolVar(&serveBare, "serve-bare", false, "internal: serve the catalog with a bare http.ServeContent (the warm reference, run as a child)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, benchUsage, flagDefaults(fs))
			return 0
		}
		fmt.Fprintf(stderr, "airlock bench: %v (see airlock bench --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "airlock bench: unexpected argument %q (see airlock bench --help)\n", fs.Arg(0))
		return 2
	}
	if serveBare {
		err := bench.ServeBare(ctx, catalog.Options{Name: opts.Catalog, Scale: catalog.Scale(scale), Seed: opts.Seed, CacheDir: opts.CacheDir}, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "airlock bench: %v\n", err)
			return 1
		}
		return 0
	}
	opts.Scenarios = bench.ParseList(scenario, bench.Scenarios())
	opts.Targets = bench.ParseList(targets, bench.Targets())
	opts.Scale = catalog.Scale(scale)
	opts.RunTimeout = timeout
	n, err := bench.ParseSize(largeSize)
	if err != nil {
		fmt.Fprintf(stderr, "airlock bench: --large-size: %v\n", err)
		return 2
	}
	opts.LargeSize = n
	level, err := zapcore.ParseLevel(logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "airlock bench: --log-level: %v\n", err)
		return 2
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "airlock bench: %v\n", err)
		return 2
	}
	opts.Log = consoleLogger(stderr, level)
	opts.Progress = stderr
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			opts.TTY = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "airlock bench: %v\n", err)
		return 1
	}
	opts.AirlockCmd, opts.AirlockEnv = []string{exe}, childEnv
	opts.BareCmd = []string{exe, "bench", "--serve-bare", "--catalog", opts.Catalog, "--scale", scale, "--seed", fmt.Sprint(opts.Seed)}
	if opts.CacheDir != "" {
		opts.BareCmd = append(opts.BareCmd, "--cache-dir", opts.CacheDir)
	}
	if slices.Contains(opts.Targets, bench.TargetDistribution) {
		path, err := distproxyBinary(ctx, distproxy, exe, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "airlock bench: distribution target: %v\n", err)
			return 1
		}
		opts.DistributionCmd = []string{path}
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		fmt.Fprintf(stderr, "airlock bench: %v\n", err)
		return 1
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "airlock bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "airlock bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	rep, err := bench.Run(ctx, opts)
	if err != nil {
		code := 1
		if errors.Is(err, bench.ErrUsage) {
			code = 2
		}
		fmt.Fprintf(stderr, "airlock bench: %v\n", err)
		return code
	}
	rep.Command = strings.TrimSpace("airlock bench " + strings.Join(args, " "))
	jsonPath, err := rep.WriteJSON(opts.Out)
	if err != nil {
		fmt.Fprintf(stderr, "airlock bench: %v\n", err)
		return 1
	}
	htmlPath, err := rep.WriteHTML(opts.Out)
	if err != nil {
		fmt.Fprintf(stderr, "airlock bench: %v\n", err)
		return 1
	}
	if err := rep.WriteTable(stdout); err != nil {
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s\n", jsonPath, htmlPath)
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

// distproxyBinary finds the distribution proxy: the flag, then "distproxy"
// next to this binary, then a build into the user cache directory.
func distproxyBinary(ctx context.Context, flagPath, exe string, stderr io.Writer) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p := filepath.Join(filepath.Dir(exe), "distproxy"); isFile(p) {
		return p, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dst := filepath.Join(dir, "airlock-bench", "distproxy")
	wd, _ := os.Getwd()
	src, err := bench.DistproxyDir(wd, filepath.Dir(exe))
	if err != nil {
		return "", fmt.Errorf("%w: run from the source tree, or pass --distproxy (make bench builds bin/distproxy)", err)
	}
	fmt.Fprintf(stderr, "airlock bench: building %s (go build in %s)\n", dst, src)
	cmd := exec.CommandContext(ctx, "go", "-C", src, "build", "-o", dst, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s (or pass --distproxy): %v\n%s", src, err, out)
	}
	return dst, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
