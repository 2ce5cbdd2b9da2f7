package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/bench"
	"github.com/airlock/airlock/internal/proctest"
	"github.com/spf13/cobra"
)

// airlock bench end to end on a tiny storm: airlock (a child process) makes
// exactly one upstream fetch per blob where three nodes going direct make
// three, the warm scenario measures the bare reference (a child too), and
// results.json and report.html are written.
func TestBenchColdOneStormWarm(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	root := newRoot(nil, &stdout, &stderr)
	root.RemoveCommand(must2(root.Find([]string{"bench"})))
	root.AddCommand(newBenchCmd([]string{asMainEnv}))
	root.SetArgs([]string{"bench", "--scenario", "cold-one,storm,warm", "--nodes", "3", "--runs", "1",
		"--targets", "airlock,direct", "--out", out})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		scenario, target string
		perBlob          int64
	}{
		{bench.ScenarioColdOne, bench.TargetAirlock, 1},
		{bench.ScenarioColdOne, bench.TargetDirect, 1},
		{bench.ScenarioStorm, bench.TargetAirlock, 1},
		{bench.ScenarioStorm, bench.TargetDirect, 3},
	} {
		r, ok := rep.Result(c.scenario, "", c.target)
		if !ok || r.Summary.Runs != 1 {
			t.Fatalf("%s on %s: not measured: %+v (errors %v)", c.scenario, c.target, r, rep.Errors)
		}
		run := r.Runs[0]
		if run.FailedPulls != 0 || run.Corrupt != 0 {
			t.Errorf("%s on %s: %d failed, %d corrupt: %s", c.scenario, c.target, run.FailedPulls, run.Corrupt, run.FirstFailure)
		}
		u := run.Upstream
		if u.FetchesPerBlobMin != c.perBlob || u.FetchesPerBlobMax != c.perBlob || u.Blobs != rep.Catalog.Blobs {
			t.Errorf("%s on %s: %d-%d upstream fetches per blob over %d blobs, want %d", c.scenario, c.target, u.FetchesPerBlobMin, u.FetchesPerBlobMax, u.Blobs, c.perBlob)
		}
		if (run.Proc != nil) != (c.target == bench.TargetAirlock) {
			t.Errorf("%s on %s: proc %+v", c.scenario, c.target, run.Proc)
		}
	}
	if run := must(rep.Result(bench.ScenarioStorm, "", bench.TargetAirlock)).Runs[0]; run.Proc.PeakRSS == 0 || run.Proc.CPUS <= 0 {
		t.Errorf("airlock child not measured: %+v", run.Proc)
	}
	for _, tg := range []string{bench.TargetAirlock, bench.TargetBare} {
		r, ok := rep.Result(bench.ScenarioWarm, "", tg)
		if !ok || r.Summary.Runs != 1 || r.Summary.MBps <= 0 || r.Runs[0].Proc == nil || r.Runs[0].Upstream.Requests != 0 {
			t.Errorf("warm on %s: %+v", tg, r)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "storm: one upstream GET per blob") || !strings.Contains(stdout.String(), "PASS") {
		t.Errorf("table:\n%s", stdout.String())
	}
}

func must2(c *cobra.Command, _ []string, err error) *cobra.Command {
	if err != nil {
		panic(err)
	}
	return c
}

func must(r bench.Result, ok bool) bench.Result {
	if !ok {
		panic("result missing")
	}
	return r
}

// Bad flags and names are usage errors: one line, exit 2.
func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "stampede"}, `unknown scenario "stampede"`},
		{[]string{"--targets", "harbor"}, `unknown target "harbor"`},
		{[]string{"--scale", "huge", "--targets", "direct"}, `--scale "huge"`},
		{[]string{"--catalog", "none", "--targets", "direct"}, `--catalog "none"`},
		{[]string{"--large-size", "big"}, `--large-size`},
		{[]string{"--failover-size", "big"}, `--failover-size`},
		{[]string{"--scenario", "failover", "--targets", "airlock"}, `scenario failover runs on target airlock-cluster only`},
		{[]string{"--nodes"}, `flag needs an argument`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--arrival", "wave"}, `--arrival "wave"`},
		{[]string{"--arrival", "rolling:0"}, `the surge must be a whole number`},
		{[]string{"--agents", "2", "--targets", "direct"}, `--agents needs --registry`},
		{[]string{"--registry", "ftp://r"}, `--registry "ftp://r"`},
		{[]string{"--registry", "http://r", "--scenario", "storm"}, `--scenario is for the targets the bench starts`},
		{[]string{"--registry", "http://r", "--images", "x", "--kubernetes", "1.31"}, `--images and --kubernetes exclude each other`},
		{[]string{"--registry", "http://r", "--username", "u"}, `--username needs --password-env`},
		{[]string{"--registry", "http://r", "--password-env", "BENCH_UNSET_VAR", "--username", "u"}, `BENCH_UNSET_VAR is empty or unset`},
		{[]string{"--registry", "http://r", "--agents", "3", "--nodes", "2"}, `--agents 3 is more than --nodes 2`},
		{[]string{"--emit-k8s", "--registry", "http://r"}, `--emit-k8s and --linger need --agents`},
		{[]string{"--images", "x", "--targets", "direct"}, `are for --registry`},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			code := run(t.Context(), append([]string{"bench", "--out", t.TempDir()}, c.args...), &bytes.Buffer{}, &stderr)
			msg := strings.TrimRight(stderr.String(), "\n")
			if code != 2 || strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and one line containing %q", code, msg, c.want)
			}
		})
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "agent"}, `--coordinator "": want http://host:port`},
		{[]string{"bench", "agent", "--coordinator", "http://c:1", "--acr-exchange"}, `--acr-exchange needs`},
		{[]string{"bench", "agent", "--coordinator", "http://c:1", "--scenario", "storm"}, `unknown flag: --scenario`},
	} {
		var stderr bytes.Buffer
		code := run(t.Context(), c.args, &bytes.Buffer{}, &stderr)
		if msg := strings.TrimRight(stderr.String(), "\n"); code != 2 || strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line containing %q", c.args, code, msg, c.want)
		}
	}
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"bench", "--help"}, &stdout, &bytes.Buffer{}); code != 0 || !strings.Contains(stdout.String(), "upstream-slow") ||
		!strings.Contains(stdout.String(), "airlock-cluster") || !strings.Contains(stdout.String(), "failover") {
		t.Fatalf("--help: exit %d\n%s", code, stdout.String())
	}
}

// The airlock-cluster target's wiring: an Azurite per run from
// bin/tools/azurite (a missing one is named with its install command
// before anything runs) and the replicas' rendezvous owner.
func TestBenchClusterStorage(t *testing.T) {
	t.Parallel()
	co, err := benchCluster(bench.ClusterOptions{FailoverSize: 1 << 20, StorageLatency: 5 * time.Millisecond})
	if err != nil {
		if os.Getenv("CI") == "true" || !strings.Contains(err.Error(), "scripts/install-tools.sh azurite") {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	peers := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	if co.Owner == nil || co.FailoverSize != 1<<20 || co.StorageLatency != 5*time.Millisecond || !slices.Contains(peers, co.Owner("sha256:"+strings.Repeat("a", 64), peers)) {
		t.Fatalf("options %+v", co)
	}
	log := &proctest.Buffer{} // Azurite's stdout and stderr, written at once
	acc, err := co.Storage(t.Context(), filepath.Join(t.TempDir(), "azurite"), log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	defer acc.Stop()
	resp, err := http.Get(acc.ServiceURL + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if acc.Name == "" || acc.Key == "" || resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500 {
		t.Fatalf("account %s at %s: %s", acc.Name, acc.ServiceURL, resp.Status)
	}
}
