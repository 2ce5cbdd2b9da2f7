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
	dir := t.TempDir()
	p, err := fakeReport().WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["schema"] != Schema {
		t.Fatalf("schema = %v", doc["schema"])
	}
	for _, k := range []string{"started", "command", "machine", "options", "catalog", "results", "checks"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("results.json has no %q", k)
		}
	}
	res := doc["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"scenario", "target", "runs", "summary"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result has no %q", k)
		}
	}
	run := res["runs"].([]any)[0].(map[string]any)
	for _, k := range []string{"wallS", "pullS", "pull", "ttfbS", "mbps", "errors", "failedPulls", "corrupt", "upstream", "proc"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run has no %q", k)
		}
	}
	up := run["upstream"].(map[string]any)
	for _, k := range []string{"requests", "blobFetches", "bytes", "fetchesPerBlobMax", "bytesRatio", "perDigest"} {
		if _, ok := up[k]; !ok {
			t.Errorf("upstream has no %q", k)
		}
	}
	sum := res["summary"].(map[string]any)
	for _, k := range []string{"wallS", "pullP50S", "pullP95S", "pullP99S", "ttfbP50S", "mbps", "upstreamRequests", "bytesRatio", "peakAboveIdle", "cpuSPerGiB"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary has no %q", k)
		}
	}
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
	dir := t.TempDir()
	p, err := fakeReport().WriteHTML(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
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
