package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// stepSpec is one event of a registry run: one run on one target.
type stepSpec struct {
	Step   int `json:"step"`   // 0-based, in the order played
	Run    int `json:"run"`    // 1-based
	Target int `json:"target"` // index in the plan's targets
	Order  int `json:"order"`  // position among the targets in this run
}

// agentPlan is what every load machine plays: the same for all of them.
type agentPlan struct {
	Targets     []planTarget `json:"targets"`
	Images      []planImage  `json:"images"`
	Platform    string       `json:"platform"`
	Nodes       int          `json:"nodes"` // in each event, every machine's
	Arrival     string       `json:"arrival"`
	Steps       []stepSpec   `json:"steps"`
	RunTimeoutS float64      `json:"runTimeoutS"`
}

// agentReport is what one machine measured in one step.
type agentReport struct {
	Part    AgentPart    `json:"part"`
	Records []NodeRecord `json:"records"`
}

// fleet plays the steps of a plan on the load machines.
type fleet interface {
	// play runs one step on every machine and returns their reports.
	play(ctx context.Context, st stepSpec) ([]agentReport, error)
}

// newPlan builds the plan of a registry run from the options.
func newPlan(opts *Options) (*agentPlan, error) {
	p := &agentPlan{Platform: opts.Platform, Nodes: opts.Nodes, Arrival: opts.Arrival.String(), RunTimeoutS: opts.RunTimeout.Seconds()}
	for _, r := range opts.Registries {
		t, err := parseRegistry(r, opts.Prefix)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(p.Targets, func(o planTarget) bool { return o.Name == t.Name }) {
			return nil, fmt.Errorf("%w: --registry %s is given twice", ErrUsage, t.Name)
		}
		p.Targets = append(p.Targets, t)
	}
	var err error
	if p.Images, err = parseImages(opts.ImagesFile, opts.Minor); err != nil {
		return nil, err
	}
	for run := 1; run <= opts.Runs; run++ {
		for i := range p.Targets {
			p.Steps = append(p.Steps, stepSpec{Step: len(p.Steps), Run: run, Target: (i + run - 1) % len(p.Targets), Order: i + 1})
		}
	}
	return p, nil
}

// RunRegistries measures the registries of opts.Registries, which the
// bench did not start: each run is one cluster event of opts.Nodes nodes
// pulling the image set, arriving as opts.Arrival says, played by this
// process or (opts.Agents > 0) by that many `airlock bench agent`
// machines it coordinates. Before any load, every registry is checked
// (reachable, credentials accepted, every image there); a failed check
// is the error, in one line. Errors wrap ErrUsage for bad options.
func RunRegistries(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	plan, err := newPlan(&opts)
	if err != nil {
		return nil, err
	}
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	cs := &clientSide{auth: opts.Auth, keychain: opts.Keychain, platform: plat}
	insts, err := cs.instances(plan.Targets)
	if err != nil {
		return nil, err
	}
	set := pullSetOf(plan.Images)
	tgs := make([]*regTarget, len(insts))
	for i, inst := range insts {
		if tgs[i], err = preflight(ctx, inst, set, &opts.Auth, opts.MarStats); err != nil {
			return nil, err
		}
	}
	var fl fleet = &localFleet{insts: insts, set: set, opts: &opts}
	if opts.Agents > 0 {
		c, err := startCoordinator(ctx, &opts, plan)
		if err != nil {
			return nil, err
		}
		defer c.close()
		if err := c.waitAgents(ctx); err != nil {
			return nil, err
		}
		fl = c
	}
	rep := &Report{Schema: Schema, Started: started.UTC(), Machine: machine(), Options: ReportOptions{
		Registries: targetNames(plan.Targets), Prefix: opts.Prefix, Arrival: plan.Arrival, Agents: opts.Agents,
		Scenarios: []string{ScenarioPull}, Targets: targetNames(plan.Targets), Nodes: opts.Nodes, Runs: opts.Runs,
	}}
	if opts.ImagesFile == "" {
		rep.Options.Minor = opts.Minor
	}
	rep.Registries = registryInfo(tgs)
	for _, im := range plan.Images {
		rep.Catalog.Images = append(rep.Catalog.Images, im.Name)
	}
	rep.Catalog.Blobs, rep.Catalog.BlobBytes = len(tgs[0].blobs), tgs[0].size
	results := make([]Result, len(tgs))
	for i, t := range plan.Targets {
		results[i] = Result{Scenario: ScenarioPull, Arrival: plan.Arrival, Target: t.Name}
	}
	for i, st := range plan.Steps {
		tg := tgs[st.Target]
		if opts.Progress != nil {
			opts.Progress(i, len(plan.Steps), fmt.Sprintf("%s %s run %d/%d", plan.Arrival, tg.inst.name, st.Run, opts.Runs))
		}
		before, berr := tg.stats.read(ctx)
		reports, err := fl.play(ctx, st)
		if err != nil {
			return nil, err
		}
		run := mergeReports(reports, set)
		if opts.Agents == 0 {
			run.Agents = nil // one machine: its part is the run
		}
		run.Run, run.Order, run.Arrival = st.Run, st.Order, plan.Arrival
		if run.WallS > 0 {
			run.MBps = float64(run.Bytes) / run.WallS / 1e6
		}
		if tg.stats.any() {
			after, aerr := tg.stats.settled(ctx)
			if berr == nil && aerr == nil {
				run.Upstream = tg.stats.upstream(before, after, tg.blobs)
			} else {
				opts.Log.Warn("upstream counts not read", zap.String("target", tg.inst.name), zap.Errors("errors", []error{berr, aerr}))
			}
		}
		results[st.Target].Runs = append(results[st.Target].Runs, run)
	}
	for i := range results {
		results[i].summarize()
	}
	rep.Results, rep.Checks = results, []Check{} // the checks judge the bench's own targets
	rep.DurationS = time.Since(started).Seconds()
	return rep, nil
}

func targetNames(ts []planTarget) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// localFleet plays every node in this process.
type localFleet struct {
	insts []*instance
	set   []image
	opts  *Options
}

func (f *localFleet) play(ctx context.Context, st stepSpec) ([]agentReport, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.RunTimeout)
	defer cancel()
	ev := &event{inst: f.insts[st.Target], set: f.set, nodes: f.opts.Nodes, arrival: f.opts.Arrival, agents: 1, start: time.Now()}
	if p := f.opts.NodeProgress; p != nil {
		ev.progress = func(done, running, failed int) { p(done, running, failed, f.opts.Nodes) }
	}
	outs, err := ev.run(ctx)
	if err != nil {
		return nil, err
	}
	return []agentReport{buildReport(outs, 0, ev.start, len(f.set))}, nil
}

// buildReport sums one machine's nodes: counts, histograms, raw records.
func buildReport(outs []outcome, agent int, start time.Time, images int) agentReport {
	r := agentReport{Part: AgentPart{Agent: agent, Hist: Hists{Images: make([]Histogram, images)}}}
	for _, o := range outs {
		r.Part.Tally.add(o.res)
		r.Part.Hist.Pull.Record(o.res.Duration)
		for _, d := range o.res.TTFB {
			r.Part.Hist.TTFB.Record(d)
		}
		for i, d := range o.res.Images {
			if d > 0 && i < images {
				r.Part.Hist.Images[i].Record(d)
			}
		}
		r.Records = append(r.Records, record(o, agent, start))
	}
	return r
}

// mergeReports adds the machines' parts into one run: counts summed,
// histograms merged bucket by bucket, per-node records put together. The
// distribution of node pull times is exact (from the records); the time to
// first byte and per-image times come from the merged histograms.
func mergeReports(reps []agentReport, set []image) RunResult {
	var res RunResult
	var t Tally
	h := &Hists{Images: make([]Histogram, len(set))}
	for _, r := range reps {
		t.merge(r.Part.Tally)
		h.merge(&r.Part.Hist)
		res.PerNode = append(res.PerNode, r.Records...)
		res.Agents = append(res.Agents, r.Part)
	}
	slices.SortFunc(res.PerNode, func(a, b NodeRecord) int { return a.Node - b.Node })
	slices.SortFunc(res.Agents, func(a, b AgentPart) int { return a.Agent - b.Agent })
	failed := make([]int, len(set))
	for _, nr := range res.PerNode {
		res.PullS = append(res.PullS, nr.PullS)
		res.WallS = max(res.WallS, nr.StartS+nr.PullS)
		if nr.Failed != "" && res.FirstFailure == "" {
			res.FirstFailure = nr.Failed
		}
		for i, v := range nr.ImagesS {
			if v == 0 && i < len(failed) {
				failed[i]++
			}
		}
	}
	res.setTally(t)
	res.Clients = len(res.PerNode)
	res.Pull = Summarize(res.PullS)
	res.TTFB = h.TTFB.Dist()
	res.Hist = h
	for i, im := range set {
		res.Images = append(res.Images, ImageStat{Image: im.name, Pull: h.Images[i].Dist(), Failed: failed[i]})
	}
	return res
}

// registryInfo describes the targets for the report.
func registryInfo(ts []*regTarget) []RegistryInfo {
	out := make([]RegistryInfo, len(ts))
	for i, t := range ts {
		out[i] = RegistryInfo{Name: t.inst.name, URL: t.inst.url, Prefix: t.inst.prefix, Credentials: t.inst.creds.String()}
		switch {
		case t.stats.marURL != "":
			out[i].Upstream = t.stats.marURL + "/_mar/stats"
		case t.stats.metricsURL != "":
			out[i].Upstream = t.stats.metricsURL
		}
	}
	return out
}
