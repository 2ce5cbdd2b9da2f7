package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// clusterReport is a report of airlock and airlock-cluster with the
// cluster's figures given.
func clusterReport(relayExtra, warmRatio, recovery float64, failed int) *Report {
	rep := fakeReport()
	rep.Options.Targets = []string{TargetAirlock, TargetCluster}
	add := func(sc, phase string, run RunResult) {
		r := Result{Scenario: sc, Phase: phase, Target: TargetCluster, Runs: []RunResult{run}}
		r.summarize()
		rep.Results = append(rep.Results, r)
	}
	add(ScenarioStorm, "", fakeRun([]float64{2, 2.1}, 20, 1, 1))
	add(ScenarioWarm, "", fakeRun([]float64{0.1}, 95*warmRatio, 0, 0))
	own := fakeRun([]float64{0.03}, 1, 1, 1)
	own.TTFB = Summarize([]float64{0.020, 0.022, 0.030})
	non := fakeRun([]float64{0.03}, 1, 1, 1)
	non.TTFB = Summarize([]float64{0.020 + relayExtra, 0.022 + relayExtra, 0.030 + relayExtra})
	add(ScenarioRelay, phaseOwner, own)
	add(ScenarioRelay, phaseNonOwner, non)
	fo := fakeRun([]float64{3, 3.5}, 20, 1, 2)
	fo.FailedPulls = failed
	fo.Failover = &FailoverRun{Killed: "127.0.0.1:1", LeaseS: 15, RecoveryS: recovery, ResumeS: recovery, StallS: recovery, BlobSize: 16 << 20,
		BlobGETs: 2, BlobBytes: 16 << 20, BytesRatio: 1, OrphanNodes: 2, MovedNodes: 2, Takeovers: 1}
	add(ScenarioFailover, "", fo)
	rep.Checks = checks(rep)
	return rep
}

func TestBenchClusterChecks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                    string
		rep                     *Report
		relay, warm, fail, reco bool
	}{
		{"all within", clusterReport(0.004, 0.95, 1.2, 0), true, true, true, true},
		{"all beyond", clusterReport(0.006, 0.85, 17.5, 1), false, false, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cs := c.rep.Checks
			for _, w := range []struct {
				prefix string
				pass   bool
			}{
				{"cluster storm", true},
				{"cluster relay", c.relay},
				{"cluster warm", c.warm},
				{"failover: corrupt", c.fail},
				{"failover: recovery", c.reco},
				{"failover: upstream bytes", true},
			} {
				if got := checkByName(t, cs, w.prefix); !got.Judged || got.Pass != w.pass {
					t.Errorf("%s: %+v, want judged and pass=%v", w.prefix, got, w.pass)
				}
			}
			var out bytes.Buffer
			if err := c.rep.WriteTable(&out); err != nil || !strings.Contains(out.String(), "failover runs") || !strings.Contains(out.String(), "killed 127.0.0.1:1") {
				t.Errorf("table (%v):\n%s", err, out.String())
			}
		})
	}
	if rep := fakeReport(); slices.ContainsFunc(rep.Checks, func(c Check) bool {
		return strings.HasPrefix(c.Name, "cluster") || strings.HasPrefix(c.Name, "failover")
	}) {
		t.Errorf("cluster checks without the cluster target: %+v", rep.Checks)
	}
}

// The cluster's scenarios need its target; by default they run only
// when it is named.
func TestBenchClusterOptions(t *testing.T) {
	t.Parallel()
	o := Options{}
	if err := o.Validate(); err != nil || slices.Contains(o.Scenarios, ScenarioFailover) || slices.Contains(o.Targets, TargetCluster) {
		t.Fatalf("defaults: %v, %v on %v", err, o.Scenarios, o.Targets)
	}
	o = Options{Targets: []string{TargetCluster}}
	if err := o.Validate(); err != nil || !slices.Contains(o.Scenarios, ScenarioFailover) || !slices.Contains(o.Scenarios, ScenarioRelay) || o.Cluster.FailoverSize != defaultFailoverSize {
		t.Fatalf("cluster: %v, %v, failover size %d", err, o.Scenarios, o.Cluster.FailoverSize)
	}
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Scenarios: []string{ScenarioFailover}, Targets: []string{TargetAirlock}}, "runs on target airlock-cluster only"},
		{Options{Scenarios: []string{ScenarioFailover}, Targets: []string{TargetCluster}, Cluster: ClusterOptions{FailoverSize: 1000}}, "--failover-size 1000"},
	} {
		if err := c.opts.Validate(); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
	o = Options{Targets: []string{TargetCluster}, AirlockCmd: []string{"airlock"}}
	o.defaults()
	if err := o.checkCommands(); err == nil || !strings.Contains(err.Error(), "no storage account") {
		t.Errorf("no storage: %v", err)
	}
	plan := plan(&Options{Scenarios: []string{ScenarioWarm, ScenarioFailover}, Targets: []string{TargetAirlock, TargetCluster}, Runs: 1})
	var got []string
	for _, st := range plan {
		got = append(got, st.scenario+"/"+st.target)
	}
	if want := []string{"warm/bare", "warm/airlock", "warm/airlock-cluster", "failover/airlock-cluster"}; !slices.Equal(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
}

func TestBenchScrape(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `# HELP airlock_cluster_fills_total Blob fills.
# TYPE airlock_cluster_fills_total counter
airlock_cluster_fills_total{role="owner"} 21
airlock_cluster_fills_total{role="relay"} 7
airlock_cluster_fills_total_other 99
airlock_gc_runs_total 1
airlock_odd{path="a b"} 2.5
`)
	}))
	defer srv.Close()
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"airlock_cluster_fills_total", `role="owner"`, 21},
		{"airlock_cluster_fills_total", "", 28},
		{"airlock_gc_runs_total", "", 1},
		{"airlock_odd", "", 2.5},
		{"airlock_missing", "", 0},
	} {
		if got, err := scrape(t.Context(), srv.URL, c.name, c.label); err != nil || got != c.want {
			t.Errorf("%s{%s}: %v, %v; want %v", c.name, c.label, got, err, c.want)
		}
	}
	srv.Close()
	if _, err := scrape(t.Context(), srv.URL, "x", ""); err == nil {
		t.Error("a closed server: no error")
	}
}
