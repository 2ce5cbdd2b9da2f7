package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/airlock/airlock/cmd/airlock/internal/logging"
	"github.com/airlock/airlock/internal/progress"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/bench"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

func benchCmd() *cobra.Command { return newBenchCmd(nil) }

// newBenchCmd is `airlock bench`; childEnv is extra environment for the
// airlock child (tests re-execute their own binary as airlock).
func newBenchCmd(childEnv []string) *cobra.Command {
	var (
		opts                                bench.Options
		rf                                  bench.RegistryFlags
		scenario, targets, scale, largeSize string
		failoverSize                        string
		distproxy, cpuProfile, logLevel     string
		timeout                             time.Duration
		serveBare                           bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Pull storms against airlock, distribution and MAR, side by side",
		Long: `Start the MAR emulator and each target fresh for every run on 127.0.0.1 and
drive simulated AKS nodes at them (go-containerregistry clients pulling like
containerd: manifests first, then 3 blobs at once). Targets are interleaved
within each run and summarised as the median of --runs.

Scenarios: cold-one, warm, storm, ranges, flaky, upstream-slow, and on
           airlock-cluster only relay and failover (or all: those the
           targets run).
Targets:   airlock (this binary, "serve", as a child process),
           airlock-cluster (3 replicas of this binary on one Azurite the
           bench starts per run, nodes spread round-robin; named only:
           scripts/install-tools.sh azurite installs Azurite;
           --storage-latency adds Azure's round trip to each storage request),
           distribution (distribution v3 proxy, bench/cmd/distproxy, a child process),
           direct (the emulator itself, no cache).
relay:     cold blob GETs one at a time, each through the digest's owner
           or through a non-owner: time to first byte of both paths.
failover:  a storm in which nodes first pull a big blob (--failover-size,
           its fill paced to 4 s); the replica owning it is killed (SIGKILL)
           mid-fill, its nodes retry once on the next replica.
The distribution target runs --distproxy, else "distproxy" next to this
binary (make bench builds bin/distproxy), else it is built with "go build"
into the user cache directory (needs the source tree and a Go toolchain).

--arrival shapes the storm and flaky scenarios: storm (all at once), ramp:N/s,
rolling:SURGE (batches of SURGE nodes, the next when the last is done).

With --registry URL (repeatable) it benchmarks registries it did not start
(airlock, distribution, Harbor, ACR...): each run is one cluster event of
--nodes nodes pulling --images FILE (or --kubernetes's bootstrap set), each
reference mapped as a node's hosts.toml does (mcr.microsoft.com/x ->
REGISTRY/PREFIXx). Credentials: the Docker config, --username with
--password-env, or --acr-exchange (ACR's token flow); --ca for TLS. A
preflight checks every registry, credential and image before any load.
Upstream requests are counted from airlock's /metrics, the emulator's
/_mar/stats, or --mar-stats URL (the emulator behind the registry).

With --agents K the nodes are played by K machines running
"airlock bench agent --coordinator http://ADDR" (node i on agent i % K):
this process waits for them on --listen ADDR, starts them together and
merges their histograms. --emit-k8s prints the Kubernetes manifests.

Writes DIR/results.json and DIR/report.html and prints a table.`,
		Example: `  make bench    # bin/airlock bench --scale small --out bench-results
  airlock bench --scenario storm --nodes 50 --runs 3 --targets airlock,direct
  airlock bench --scale full --scenario cold-one,ranges --out /tmp/bench
  airlock bench --targets airlock,airlock-cluster --scenario warm,storm,relay,failover

  # a rolling upgrade of 100 nodes, 10 at a time, against the lab's airlock
  airlock bench --registry http://127.0.0.1:5000 --prefix aks-managed-repository/ --nodes 100 --arrival rolling:10
  # your ACR, token flow, from 4 machines
  airlock bench --registry https://myacr.azurecr.io --images images.txt --username $ID --password-env PW \
      --acr-exchange --agents 4 --listen :7070 --nodes 300
  airlock bench agent --coordinator http://10.0.0.4:7070 --username $ID --password-env PW --acr-exchange
  airlock bench --registry https://myacr.azurecr.io --agents 8 --nodes 300 --emit-k8s | kubectl apply -f -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := rf.Check(cmd.Flags(), &opts); err != nil {
				return &usageError{err.Error()}
			}
			if rf.EmitK8s {
				if err := rf.Manifests(stdout, cmd.Flags(), &opts); err != nil {
					if errors.Is(err, bench.ErrUsage) {
						return &usageError{err.Error()}
					}
					return err
				}
				return nil
			}
			if serveBare {
				return bench.ServeBare(ctx, catalog.Options{Name: opts.Catalog, Scale: catalog.Scale(scale), Seed: opts.Seed, CacheDir: opts.CacheDir}, stdout)
			}
			if scenario != "all" { // all: those the targets run (Validate)
				opts.Scenarios = bench.ParseList(scenario, bench.Scenarios())
			}
			opts.Targets = bench.ParseList(targets, bench.Targets())
			opts.Scale = catalog.Scale(scale)
			opts.RunTimeout = timeout
			n, err := bench.ParseSize(largeSize)
			if err != nil {
				return usagef("--large-size: %v", err)
			}
			opts.LargeSize = n
			if opts.Cluster.FailoverSize, err = bench.ParseSize(failoverSize); err != nil {
				return usagef("--failover-size: %v", err)
			}
			level, err := zapcore.ParseLevel(logLevel)
			if err != nil {
				return usagef("--log-level: %v", err)
			}
			if err := opts.Validate(); err != nil {
				return &usageError{err.Error()}
			}
			opts.Log = logging.Console(stderr, level)
			steps := progress.NewSteps(stderr)
			defer steps.Close()
			opts.Progress, opts.NodeProgress, opts.Notice = steps.Start, steps.Nodes, steps.Note
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			opts.AirlockCmd, opts.AirlockEnv = []string{exe}, childEnv
			if slices.Contains(opts.Targets, bench.TargetCluster) {
				if opts.Cluster, err = benchCluster(opts.Cluster); err != nil {
					return err
				}
			}
			opts.BareCmd = []string{exe, "bench", "--serve-bare", "--catalog", opts.Catalog, "--scale", scale, "--seed", fmt.Sprint(opts.Seed)}
			if opts.CacheDir != "" {
				opts.BareCmd = append(opts.BareCmd, "--cache-dir", opts.CacheDir)
			}
			if len(opts.Registries) == 0 && slices.Contains(opts.Targets, bench.TargetDistribution) {
				path, err := distproxyBinary(ctx, distproxy, exe, stderr)
				if err != nil {
					return fmt.Errorf("distribution target: %w", err)
				}
				opts.DistributionCmd = []string{path}
			}
			if err := os.MkdirAll(opts.Out, 0o755); err != nil {
				return err
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(ctx, opts)
			steps.Close()
			if err != nil {
				if errors.Is(err, bench.ErrUsage) {
					return &usageError{err.Error()}
				}
				return err
			}
			rep.Command = commandLine(cmd)
			jsonPath, err := rep.WriteJSON(opts.Out)
			if err != nil {
				return err
			}
			htmlPath, err := rep.WriteHTML(opts.Out)
			if err != nil {
				return err
			}
			if err := rep.WriteTable(stdout); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "\nwrote %s and %s\n", jsonPath, htmlPath)
			if rf.Linger > 0 {
				if err := bench.ServeResults(ctx, opts.Listen, opts.Out, rf.Linger, steps.Note); err != nil {
					return err
				}
			}
			if len(rep.Errors) > 0 {
				return exitCode(1) // the table lists them
			}
			return nil
		},
	}
	cmd.AddCommand(benchAgentCmd())
	fs := cmd.Flags()
	fs.StringVar(&scenario, "scenario", "all", "scenario `NAME`s, comma-separated, or all")
	fs.IntVar(&opts.Nodes, "nodes", 100, "simulated nodes in storm and flaky, and in each --registry run")
	fs.StringVar(&opts.Catalog, "catalog", catalog.NameAKS, "emulator catalog (aks)")
	fs.StringVar(&scale, "scale", string(catalog.ScaleSmall), "catalog layer sizes: small or full")
	fs.StringVar(&targets, "targets", strings.Join(bench.DefaultTargets(), ","), "targets, comma-separated (all: "+strings.Join(bench.Targets(), ",")+")")
	fs.IntVar(&opts.Runs, "runs", 5, "runs per scenario and target (median reported)")
	fs.StringVar(&opts.Out, "out", "bench-results", "output `DIR` for results.json and report.html")
	fs.StringVar(&opts.Minor, "kubernetes", "1.31", "Kubernetes minor version of the bootstrap set")
	fs.Uint64Var(&opts.Seed, "seed", 1, "catalog seed")
	fs.StringVar(&opts.CacheDir, "cache-dir", "", "emulator layer cache (default <tmp>/airlock-mar)")
	fs.StringVar(&largeSize, "large-size", "128MiB", "size of the ranges blob")
	fs.StringVar(&failoverSize, "failover-size", "16MiB", "size of the failover scenario's big blob")
	fs.DurationVar(&opts.Cluster.StorageLatency, "storage-latency", 0, "added to each request of the airlock-cluster replicas to their storage account, as Azure's round trip (e.g. 5ms); 0: Azurite's own")
	fs.StringVar(&distproxy, "distproxy", "", "distproxy binary for the distribution target")
	fs.DurationVar(&timeout, "run-timeout", 10*time.Minute, "bound on one scenario run on one target")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (the clients) to `FILE`")
	fs.StringVar(&logLevel, "log-level", "warn", "bench log level (stderr)")
	fs.BoolVar(&serveBare, "serve-bare", false, "internal: serve the catalog with a bare http.ServeContent (the warm reference, run as a child)")
	fs.Lookup("serve-bare").Hidden = true
	rf.Register(fs, &opts)
	return cmd
}

// benchAgentCmd is `airlock bench agent`: one load machine of a
// distributed bench.
func benchAgentCmd() *cobra.Command {
	var (
		o        bench.AgentOptions
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Play a slice of a distributed bench's nodes (airlock bench --agents K)",
		Long: `Join the coordinator (airlock bench --registry ... --agents K --listen ADDR),
check the registries with this machine's credentials, and play this machine's
slice of every run's nodes (node i on agent i % K) at the instant the
coordinator sets, then send it the counts and histograms. Exits 0 when the
coordinator has every run, 1 when it calls the run off or cannot be reached.
In a Kubernetes Indexed Job, $JOB_COMPLETION_INDEX picks the slice.`,
		Example: `  airlock bench agent --coordinator http://10.0.0.4:7070
  airlock bench agent --coordinator http://bench:7070 --username $ID --password-env PW --acr-exchange`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			level, err := zapcore.ParseLevel(logLevel)
			if err != nil {
				return usagef("--log-level: %v", err)
			}
			o.Log = logging.Console(stderr, level)
			steps := progress.NewSteps(stderr)
			defer steps.Close()
			o.Progress, o.NodeProgress, o.Notice = steps.Start, steps.Nodes, steps.Note
			err = bench.RunAgent(cmd.Context(), o)
			if errors.Is(err, bench.ErrUsage) {
				return &usageError{err.Error()}
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Coordinator, "coordinator", "", "`URL` of the coordinator, http://HOST:PORT (required)")
	fs.StringVar(&o.Name, "name", "", "this machine in the report (default its host name)")
	fs.IntVar(&o.Index, "index", -1, "the slice to take, 0..K-1 (default $JOB_COMPLETION_INDEX, else any)")
	fs.StringVar(&logLevel, "log-level", "warn", "agent log level (stderr)")
	o.Auth.Register(fs)
	return cmd
}

// commandLine is the command as given: its path and the flags set.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				parts = append(parts, "--"+f.Name, v)
			}
			return
		}
		parts = append(parts, "--"+f.Name, f.Value.String())
	})
	return strings.Join(parts, " ")
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
