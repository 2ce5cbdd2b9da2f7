package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeRun is a measured run with the given figures.
func fakeRun(pulls []float64, mbps float64, fetchMin, fetchMax int64) RunResult {
	return RunResult{
		WallS: Summarize(pulls).Max, Clients: len(pulls), PullS: pulls, Pull: Summarize(pulls),
		TTFB: Summarize([]float64{0.1}), MBps: mbps,
		Upstream: Upstream{Source: sourceMAR, FetchesPerBlobMin: fetchMin, FetchesPerBlobMax: fetchMax, BlobBytes: 1 << 20, BlobSize: 1 << 20, BytesRatio: 1,
			PerDigest: []DigestStat{{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1 << 20, Fetches: fetchMax, GETs: fetchMax, Bytes: 1 << 20}}},
		Proc: &Proc{IdleRSS: 20 << 20, PeakRSS: 30 << 20, AboveIdle: 10 << 20, CPUS: 0.5, CPUSPerGiB: 1.5},
	}
}

func fakeReport() *Report {
	rep := &Report{Schema: Schema, Started: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Command: "airlock bench --scale small",
		Machine: Machine{CPUs: 2, OS: "linux", Arch: "amd64", Go: "go1.26"},
		Options: ReportOptions{Runs: 1, Nodes: 3, Scale: "small", Catalog: "aks"},
		Catalog: CatalogInfo{Blobs: 1, BlobBytes: 1 << 20, LargeSize: 128 << 20}}
	add := func(sc, phase, tg string, run RunResult) {
		r := Result{Scenario: sc, Phase: phase, Target: tg, Runs: []RunResult{run}}
		r.summarize()
		rep.Results = append(rep.Results, r)
	}
	add(ScenarioColdOne, "", TargetAirlock, fakeRun([]float64{1}, 10, 1, 1))
	add(ScenarioStorm, "", TargetAirlock, fakeRun([]float64{1, 1.1, 1.3}, 30, 1, 1))
	add(ScenarioStorm, "", TargetDistribution, fakeRun([]float64{2, 3, 4}, 10, 2, 3))
	add(ScenarioWarm, "", TargetAirlock, fakeRun([]float64{0.1}, 95, 0, 0))
	add(ScenarioWarm, "", TargetBare, fakeRun([]float64{0.1}, 100, 0, 0))
	add(ScenarioWarm, "", TargetDistribution, fakeRun([]float64{0.2}, 50, 0, 0))
	rep.Checks = checks(rep)
	return rep
}

func checkByName(t *testing.T, cs []Check, prefix string) Check {
	t.Helper()
	for _, c := range cs {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	t.Fatalf("no check %q", prefix)
	return Check{}
}

func TestChecksJudgeTheTargets(t *testing.T) {
	t.Parallel()
	cs := fakeReport().Checks
	cases := []struct {
		prefix        string
		judged, pass  bool
		gotContaining string
	}{
		{"storm: one upstream GET", true, true, "min 1, max 1"},
		{"storm: slowest node", true, false, "1.30×"},
		{"warm: throughput vs bare", true, true, "0.95×"},
		{"warm: ahead of distribution", true, true, "1.90×"},
		{"upstream-slow", false, false, "needs scenario upstream-slow"},
		{"ranges cold", false, false, "needs scenario ranges"},
		{"storm: peak RSS", true, true, "10.0 MiB"},
		{"flaky", false, false, "needs scenario flaky"},
	}
	for _, c := range cases {
		got := checkByName(t, cs, c.prefix)
		if got.Judged != c.judged || got.Pass != c.pass || !strings.Contains(got.Got, c.gotContaining) {
			t.Errorf("%s: %+v, want judged=%v pass=%v got~%q", c.prefix, got, c.judged, c.pass, c.gotContaining)
		}
	}
}

func TestResultsJSONSchema(t *testing.T) {
	t.Parallel()
	_, b := written(t, fakeReport().WriteJSON)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["schema"] != Schema {
		t.Fatalf("schema = %v", doc["schema"])
	}
	hasKeys(t, "results.json", doc, "started", "command", "machine", "options", "catalog", "results", "checks")
	res := doc["results"].([]any)[0].(map[string]any)
	hasKeys(t, "result", res, "scenario", "target", "runs", "summary")
	run := res["runs"].([]any)[0].(map[string]any)
	hasKeys(t, "run", run, "wallS", "pullS", "pull", "ttfbS", "mbps", "errors", "failedPulls", "corrupt", "upstream", "proc")
	up := run["upstream"].(map[string]any)
	hasKeys(t, "upstream", up, "requests", "blobFetches", "bytes", "fetchesPerBlobMax", "bytesRatio", "perDigest")
	sum := res["summary"].(map[string]any)
	hasKeys(t, "summary", sum, "wallS", "pullP50S", "pullP95S", "pullP99S", "ttfbP50S", "mbps", "upstreamRequests", "bytesRatio", "peakAboveIdle", "cpuSPerGiB")
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Results) != 6 || back.Results[1].Summary.PullMax != 1.3 {
		t.Fatalf("round trip: %v %+v", err, back.Results)
	}
}

// externalRef finds anything a browser would fetch: scripts, stylesheets,
// images, fonts, CSS imports or url() values.
var externalRef = regexp.MustCompile(`(?i)<script|<link|<img|<iframe|src=|href=|@import|url\(`)

func TestReportHTMLIsSelfContained(t *testing.T) {
	t.Parallel()
	p, b := written(t, fakeReport().WriteHTML)
	page := string(b)
	if filepath.Base(p) != "report.html" || !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Fatalf("not an HTML page at %s", p)
	}
	// Three scenarios, each with a pull-time chart and an upstream-bytes chart.
	if n := strings.Count(page, "<svg"); n != 6 || strings.Count(page, "</svg>") != 6 {
		t.Fatalf("%d SVG charts, want 6", n)
	}
	if m := externalRef.FindString(page); m != "" {
		t.Fatalf("report references something external: %q", m)
	}
	for _, want := range []string{"pull time per node", "upstream blob bytes", "airlock", "distribution", "bare", "FAIL", "PASS", "storm: slowest node"} {
		if !strings.Contains(page, want) {
			t.Errorf("report has no %q", want)
		}
	}
	if strings.Contains(page, "<text x=\"NaN") || strings.Contains(page, "Inf") {
		t.Fatal("chart coordinates are not finite")
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := fakeReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"scenario", "fetch/blob", "storm", "distribution", "2-3", "PASS", "FAIL", "n/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("table has no %q:\n%s", want, out)
		}
	}
}

func TestBoxPlotHandlesEmptyAndZero(t *testing.T) {
	t.Parallel()
	svg := boxPlotSVG("t", "s", []series{{name: "airlock"}, {name: "direct", values: []float64{0, 0}}})
	if !strings.Contains(svg, "no data") || strings.Contains(svg, "NaN") {
		t.Fatalf("svg: %s", svg)
	}
	if ticks := niceTicks(0.87); ticks[len(ticks)-1] < 0.87 || len(ticks) > 12 {
		t.Fatalf("ticks %v", ticks)
	}
}

// registryReport is a report of a run against a registry on two load
// machines.
func registryReport() *Report {
	rep := &Report{Schema: Schema, Started: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Command: "airlock bench --registry http://r --agents 2",
		Options: ReportOptions{Runs: 1, Nodes: 4, Agents: 2, Arrival: "rolling:2"}, Catalog: CatalogInfo{Images: []string{"r/a:1", "r/b:1"}, Blobs: 3, BlobBytes: 3 << 20},
		Registries: []RegistryInfo{{Name: "r", URL: "http://r", Credentials: "user u", Upstream: "http://r/metrics"}}}
	run := RunResult{Run: 1, Arrival: "rolling:2", WallS: 2, Clients: 4, PullS: []float64{1, 1, 0.9, 1.2}, Bytes: 4 << 20, Requests: 80,
		ErrorKinds: map[string]int64{"HTTP 503": 3, kindBroken: 1}, FailedKinds: map[string]int64{"HTTP 404": 1}, FailedPulls: 1,
		Upstream: Upstream{Source: sourceAirlock, Requests: 5, BlobFetches: 3, Blobs: 3, CacheHits: 70},
		Images:   []ImageStat{{Image: "r/a:1", Pull: Summarize([]float64{0.5, 0.6})}, {Image: "r/b:1", Pull: Summarize([]float64{0.4}), Failed: 1}},
		Agents:   []AgentPart{{Agent: 0, Name: "m0", Tally: Tally{Nodes: 2}}, {Agent: 1, Name: "m1", Tally: Tally{Nodes: 2, FailedPulls: 1}}}}
	for i, p := range run.PullS {
		run.PerNode = append(run.PerNode, NodeRecord{Node: i, Agent: i % 2, StartS: float64(i/2) * 1.1, PullS: p})
	}
	run.Pull = Summarize(run.PullS)
	r := Result{Scenario: ScenarioPull, Arrival: "rolling:2", Target: "r", Runs: []RunResult{run}}
	r.summarize()
	rep.Results = []Result{r}
	return rep
}

// A registry run's report: the CDF and arrivals charts, the slowest node,
// per-image times, errors by kind, the load machines.
func TestRegistryReport(t *testing.T) {
	t.Parallel()
	rep := registryReport()
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pull @rolling:2", "~1.00", "slowest node #3 (agent 1) 1.200 s, started at 1.100 s", "HTTP 503 ×3, broken body ×1",
		"failed nodes: 1 (HTTP 404 ×1)", "r/b:1", "agent 1 (m1): 2 nodes", "cache hits 70", "r = http://r/v2/ with user u; upstream counted by http://r/metrics"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table has no %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "airlock targets") {
		t.Error("a registry run judges the bench's own targets")
	}
	_, page := written(t, rep.WriteHTML)
	if n := strings.Count(string(page), "<svg"); n != 4 {
		t.Errorf("%d charts, want the box plot, the bytes, the CDF and the arrivals", n)
	}
	for _, want := range []string{"CDF across nodes", "arrivals over time", "r started", "r done", "share of nodes", "Registries", "slowest node #3"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html has no %q", want)
		}
	}
	if m := externalRef.FindString(string(page)); m != "" || strings.Contains(string(page), "NaN") {
		t.Fatalf("report references %q or has NaN", m)
	}
}

// written is the path and contents of the file write puts in a new
// temporary directory.
func written(t *testing.T, write func(dir string) (string, error)) (string, []byte) {
	t.Helper()
	p, err := write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// hasKeys checks that the JSON object doc (what, in messages) has every key.
func hasKeys(t *testing.T, what string, doc map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := doc[k]; !ok {
			t.Errorf("%s has no %q", what, k)
		}
	}
}
