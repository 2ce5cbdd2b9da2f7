package bench

import (
	"math"
	"testing"
)

func TestPercentileAndMedian(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"one", []float64{7}, 99, 7},
		{"odd median", []float64{3, 1, 2}, 50, 2},
		{"even median interpolates", []float64{4, 1, 3, 2}, 50, 2.5},
		{"p0 is min", []float64{5, 9, 1}, 0, 1},
		{"p100 is max", []float64{5, 9, 1}, 100, 9},
		{"p95 of 1..101", seq(101), 95, 96},
		{"p99 of 1..100 interpolates", seq(100), 99, 99.01},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := append([]float64(nil), c.xs...)
			if got := Percentile(c.xs, c.p); math.Abs(got-c.want) > 1e-9 {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", c.xs, c.p, got, c.want)
			}
			for i := range in {
				if in[i] != c.xs[i] {
					t.Fatal("Percentile reordered its input")
				}
			}
		})
	}
	if got := Median([]float64{10, 30, 20, 40}); got != 25 {
		t.Fatalf("Median = %v, want 25", got)
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[n-1-i] = float64(i + 1) // descending: Percentile must sort
	}
	return out
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	d := Summarize(seq(101))
	want := Dist{N: 101, Min: 1, P25: 26, P50: 51, P75: 76, P90: 91, P95: 96, P99: 100, Max: 101}
	if d != want {
		t.Fatalf("Summarize = %+v, want %+v", d, want)
	}
	if (Summarize(nil) != Dist{}) {
		t.Fatal("Summarize(nil) is not zero")
	}
}

func TestResultSummaryMediansAndWorstCases(t *testing.T) {
	t.Parallel()
	r := Result{Runs: []RunResult{
		{WallS: 3, MBps: 10, Pull: Dist{Max: 3}, Upstream: Upstream{FetchesPerBlobMin: 1, FetchesPerBlobMax: 1}, Corrupt: 1},
		{WallS: 1, MBps: 30, Pull: Dist{Max: 1}, Upstream: Upstream{FetchesPerBlobMin: 1, FetchesPerBlobMax: 2}, FailedPulls: 2},
		{WallS: 2, MBps: 20, Pull: Dist{Max: 2}, Upstream: Upstream{FetchesPerBlobMin: 0, FetchesPerBlobMax: 1}, Proc: &Proc{AboveIdle: 5 << 20, PeakRSS: 30 << 20, CPUSPerGiB: 2}},
		{Error: "target did not start"},
	}}
	r.summarize()
	s := r.Summary
	if s.Runs != 3 || s.Errored != 1 || s.WallS != 2 || s.MBps != 20 || s.PullMax != 2 {
		t.Fatalf("medians: %+v", s)
	}
	if s.FetchesPerBlobMin != 0 || s.FetchesPerBlobMax != 2 || s.Corrupt != 1 || s.FailedPulls != 2 {
		t.Fatalf("worst cases: %+v", s)
	}
	if s.PeakAboveIdle != 5<<20 || s.CPUSPerGiB != 2 {
		t.Fatalf("proc: %+v", s)
	}
}

func TestPlanInterleavesTargets(t *testing.T) {
	t.Parallel()
	o := &Options{Scenarios: []string{ScenarioColdOne, ScenarioWarm}, Targets: []string{"a", "b", "c"}, Runs: 2}
	var got []string
	for _, s := range plan(o) {
		got = append(got, s.scenario+":"+s.target)
	}
	want := []string{
		"cold-one:a", "cold-one:b", "cold-one:c", "cold-one:b", "cold-one:c", "cold-one:a",
		"warm:bare", "warm:a", "warm:b", "warm:c", "warm:a", "warm:b", "warm:c", "warm:bare",
	}
	if len(got) != len(want) {
		t.Fatalf("plan = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("plan = %v, want %v", got, want)
		}
	}
}

func TestParseHelpers(t *testing.T) {
	t.Parallel()
	if got := ParseList("all", Scenarios()); len(got) != len(Scenarios()) {
		t.Fatalf("all = %v", got)
	}
	if got := ParseList("storm, warm,storm", nil); len(got) != 2 || got[0] != "storm" || got[1] != "warm" {
		t.Fatalf("list = %v", got)
	}
	for in, want := range map[string]int64{"128MiB": 128 << 20, "4096": 4096, "1GiB": 1 << 30, "8 KiB": 8 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "-1MiB", "0"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	cpu, err := parseStatCPU("1234 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0")
	if err != nil || cpu != 3 {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", cpu, err)
	}
}
