package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// step is one measurement: a scenario on a target in one run.
type step struct {
	scenario, target string
	run, order       int
}

// plan interleaves the targets within every run (A/B/C, B/C/A, ...), so
// that slow drifts of a shared machine spread over all of them. The warm
// scenario also measures the bare ServeContent reference.
func plan(opts *Options) []step {
	var out []step
	for _, sc := range opts.Scenarios {
		targets := opts.Targets
		switch {
		case sc == ScenarioWarm:
			targets = append([]string{TargetBare}, targets...)
		case clusterOnly(sc):
			targets = []string{TargetCluster}
		}
		for run := 1; run <= opts.Runs; run++ {
			for i := range targets {
				t := targets[(i+run-1)%len(targets)]
				out = append(out, step{scenario: sc, target: t, run: run, order: i + 1})
			}
		}
	}
	return out
}

// phases lists the phases a scenario reports.
func phases(scenario string) []string {
	switch scenario {
	case ScenarioRanges:
		return []string{"cold", "warm"}
	case ScenarioStorm:
		return []string{"", "warm"} // storm/warm: the same storm on a warm cache, a reference
	case ScenarioRelay:
		return []string{phaseOwner, phaseNonOwner}
	}
	return []string{""}
}

// Run measures every selected scenario on every selected target and returns
// the report (also when some runs failed: see Report.Errors). It returns an
// error for bad options, a catalog that cannot be generated, or ctx ending.
// With opts.Registries it is RunRegistries.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if len(opts.Registries) > 0 {
		return RunRegistries(ctx, opts)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.checkCommands(); err != nil {
		return nil, err
	}
	started := time.Now()
	marCfg := mar.Config{Catalog: opts.Catalog, Scale: opts.Scale, Seed: opts.Seed, CacheDir: opts.CacheDir}
	if slices.Contains(opts.Scenarios, ScenarioRanges) {
		marCfg.Extra = []catalog.Extra{{Repo: largeRef.Repo, Tag: largeRef.Tag, LayerSizes: []int64{opts.LargeSize}}}
	}
	marCfg.Extra = append(marCfg.Extra, clusterExtras(&opts)...)
	cat, err := catalog.Generate(ctx, catalog.Options{Name: marCfg.Catalog, Scale: marCfg.Scale, Seed: marCfg.Seed, CacheDir: marCfg.CacheDir, Extra: marCfg.Extra})
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	set, err := newPullSet(cat, opts.Minor)
	if err != nil {
		return nil, err
	}
	if err := set.addClusterExtras(cat); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(opts.WorkDir, "airlock-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	rep := &Report{Schema: Schema, Started: started.UTC(), Machine: machine(), Options: ReportOptions{
		Arrival: opts.Arrival.String(), Scenarios: opts.Scenarios, Targets: opts.Targets, Nodes: opts.Nodes, Runs: opts.Runs, Catalog: opts.Catalog,
		Scale: string(opts.Scale), Minor: opts.Minor, Seed: opts.Seed, LargeSize: opts.LargeSize, RangeSize: opts.RangeSize, RangeCount: opts.RangeCount,
	}}
	if slices.Contains(opts.Targets, TargetCluster) {
		rep.Options.StorageLatencyMS = float64(opts.Cluster.StorageLatency) / float64(time.Millisecond)
	}
	rep.Catalog = CatalogInfo{Blobs: len(set.blobs), BlobBytes: set.size}
	for _, r := range set.refs {
		rep.Catalog.Images = append(rep.Catalog.Images, r.String())
	}
	if set.large.Size > 0 {
		rep.Catalog.LargeBlob, rep.Catalog.LargeSize = set.large.Digest.String(), set.large.Size
	}
	targets := map[string]target{
		TargetDirect:       directTarget(),
		TargetBare:         bareTarget(),
		TargetAirlock:      airlockTarget(opts.AirlockCmd, opts.AirlockEnv),
		TargetDistribution: distributionTarget(opts.DistributionCmd),
		TargetCluster:      clusterTarget(opts.AirlockCmd, opts.AirlockEnv, opts.Cluster),
	}
	if len(opts.BareCmd) > 0 {
		targets[TargetBare] = bareChildTarget(opts.BareCmd, opts.AirlockEnv)
	}
	results := map[string]*Result{}
	var order []string
	get := func(sc, phase, tg string) *Result {
		k := sc + "/" + phase + "/" + tg
		if results[k] == nil {
			results[k] = &Result{Scenario: sc, Phase: phase, Target: tg}
			order = append(order, k)
		}
		return results[k]
	}
	steps := plan(&opts)
	for i, st := range steps {
		if opts.Progress != nil {
			opts.Progress(i, len(steps), fmt.Sprintf("%-13s %-12s run %d/%d", st.scenario, st.target, st.run, opts.Runs))
		}
		prs, err := runOne(ctx, &opts, work, marCfg, set, st, targets[st.target])
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s on %s, run %d: %v", st.scenario, st.target, st.run, err))
			opts.Log.Warn("run failed", zap.String("scenario", st.scenario), zap.String("target", st.target), zap.Int("run", st.run), zap.Error(err))
			for _, ph := range phases(st.scenario) {
				if !slices.ContainsFunc(prs, func(p phaseResult) bool { return p.phase == ph }) {
					prs = append(prs, phaseResult{phase: ph, run: RunResult{Error: err.Error()}})
				}
			}
		}
		for _, pr := range prs {
			pr.run.Run, pr.run.Order = st.run, st.order
			r := get(st.scenario, pr.phase, st.target)
			if pr.run.Arrival != "" {
				r.Arrival = pr.run.Arrival
			}
			r.Runs = append(r.Runs, pr.run)
		}
	}
	for _, k := range order {
		results[k].summarize()
		rep.Results = append(rep.Results, *results[k])
	}
	sortResults(rep.Results, opts.Scenarios)
	rep.Checks = checks(rep)
	rep.DurationS = time.Since(started).Seconds()
	rep.Machine.LoadEnd = loadavg()
	return rep, nil
}

// sortResults orders by scenario (as selected), phase, then target
// (airlock, distribution, direct, bare).
func sortResults(rs []Result, scenarios []string) {
	tOrder := append(Targets(), TargetBare)
	slices.SortStableFunc(rs, func(a, b Result) int {
		if c := slices.Index(scenarios, a.Scenario) - slices.Index(scenarios, b.Scenario); c != 0 {
			return c
		}
		if c := strings.Compare(a.Phase, b.Phase); c != 0 {
			return c
		}
		return slices.Index(tOrder, a.Target) - slices.Index(tOrder, b.Target)
	})
}

// runOne starts a fresh emulator and target and measures one scenario.
func runOne(ctx context.Context, opts *Options, work string, marCfg mar.Config, set *pullSet, st step, tg target) ([]phaseResult, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	dir, err := os.MkdirTemp(work, fmt.Sprintf("%s-%s-%d-", st.scenario, st.target, st.run))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := mar.New(marCfg, opts.Log.Named("mar"))
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	defer m.Close()
	inst, err := tg.start(ctx, startEnv{upstream: m.URL(), dir: dir, cat: m.Catalog()})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := inst.stop(); err != nil {
			opts.Log.Warn("target did not stop cleanly", zap.String("target", st.target), zap.Error(err))
		}
	}()
	prs, err := scenarioFuncs()[st.scenario](ctx, &runEnv{opts: opts, mar: m, inst: inst, set: set})
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", opts.RunTimeout)
	}
	return prs, err
}

// machine describes this host.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == "MemTotal" {
				m.MemBytes = parseKB(v)
			}
		}
	}
	m.Load = loadavg()
	return m
}

// loadavg is the 1, 5 and 15 minute load averages ("" when unknown).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
