package bench

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/deploy/aks"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
)

// Fault parameters of the flaky and upstream-slow scenarios.
const (
	flakyCutShare   = 0.05       // share of blobs whose bodies are cut mid-way
	flakyErrorRate  = 0.02       // share of requests answered 503
	slowBandwidth   = 50_000_000 // upstream-slow: 50 MB/s
	slowHeaderDelay = 50 * time.Millisecond
	warmPulls       = 10       // warm: at most this many sequential pulls per run, each by a fresh node,
	warmBytes       = 64 << 20 // or fewer once they add up to this many bytes
)

// warmRounds is how many sequential pulls the warm scenario measures: enough
// to move warmBytes, at most warmPulls.
func warmRounds(setSize int64) int {
	if setSize <= 0 {
		return 1
	}
	return int(min(warmPulls, max(1, (warmBytes+setSize-1)/setSize)))
}

// largeRef is the extra image holding the ranges scenario's blob.
var largeRef = catalog.Ref{Repo: "bench/large", Tag: "v1"}

// pullSet is what one node pulls: the bootstrap set's linux/amd64 blobs.
type pullSet struct {
	refs   []catalog.Ref
	images []image          // refs as nodes pull them
	blobs  map[string]int64 // digest -> size
	size   int64
	large  catalog.Blob // the ranges blob, when generated

	failover catalog.Blob    // the failover scenario's big blob, when generated
	relay    []v1.Descriptor // the relay scenario's blobs, when generated
}

// newPullSet reads the bootstrap set of minor from the catalog.
func newPullSet(cat *catalog.Catalog, minor string) (*pullSet, error) {
	refs, err := aks.Bootstrap(minor)
	if err != nil {
		return nil, err
	}
	ps := &pullSet{refs: refs, images: imagesOf(refs), blobs: map[string]int64{}}
	for _, r := range refs {
		img, ok := cat.Image(r.Repo, r.Tag)
		if !ok {
			return nil, fmt.Errorf("%s: not in the catalog", r)
		}
		pm, ok := img.Platform("linux/amd64")
		if !ok {
			return nil, fmt.Errorf("%s: no linux/amd64 manifest", r)
		}
		for _, d := range append([]v1.Descriptor{pm.Config}, pm.Layers...) {
			if _, ok := ps.blobs[d.Digest.String()]; !ok {
				ps.blobs[d.Digest.String()] = d.Size
				ps.size += d.Size
			}
		}
	}
	if img, ok := cat.Image(largeRef.Repo, largeRef.Tag); ok {
		pm, _ := img.Platform("linux/amd64")
		if len(pm.Layers) != 1 {
			return nil, fmt.Errorf("%s: want one layer", largeRef)
		}
		if ps.large, err = cat.Blob(largeRef.Repo, pm.Layers[0].Digest); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// runEnv is one run of one scenario on one started target.
type runEnv struct {
	opts *Options
	mar  *mar.Server
	inst *instance
	set  *pullSet

	// A scenario may change what pullNodes does: the images each node
	// pulls (nil: set.images), the blobs counted upstream (nil:
	// set.blobs), a blob the nodes report progress on, and what runs
	// while they pull (it returns by itself, at the latest once finished
	// is closed).
	images []image
	scope  map[string]int64
	watch  *blobWatch
	during func(ctx context.Context, finished <-chan struct{})
}

// phaseResult is a measured phase ("" unless the scenario has several).
type phaseResult struct {
	phase string
	run   RunResult
}

// scenarioFunc measures one scenario on env.
type scenarioFunc func(ctx context.Context, env *runEnv) ([]phaseResult, error)

func scenarioFuncs() map[string]scenarioFunc {
	one := func(phase string, r RunResult) []phaseResult { return []phaseResult{{phase, r}} }
	return map[string]scenarioFunc{
		ScenarioColdOne: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			return one("", env.pullNodes(ctx, 1, 1, Arrival{})), nil
		},
		ScenarioWarm: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			if err := env.prime(ctx); err != nil {
				return nil, err
			}
			return one("", env.pullNodes(ctx, 1, warmRounds(env.set.size), Arrival{})), nil
		},
		ScenarioStorm: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			// The same storm again on the now warm cache: the fastest this
			// machine runs it, a reference for the cold storm.
			cold := env.pullNodes(ctx, env.opts.Nodes, 1, env.opts.Arrival)
			return []phaseResult{{"", cold}, {"warm", env.pullNodes(ctx, env.opts.Nodes, 1, env.opts.Arrival)}}, nil
		},
		ScenarioFlaky: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			if err := env.mar.SetFaults(flakyFaults(env.set)...); err != nil {
				return nil, err
			}
			return one("", env.pullNodes(ctx, env.opts.Nodes, 1, env.opts.Arrival)), nil
		},
		ScenarioUpstreamSlow: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			err := env.mar.SetFaults(
				fault.Fault{Kind: fault.KindBlobData, Bandwidth: slowBandwidth},
				fault.Fault{Kind: fault.KindAny, Delay: units.Duration(slowHeaderDelay)})
			if err != nil {
				return nil, err
			}
			return one("", env.pullNodes(ctx, 1, 1, Arrival{})), nil
		},
		ScenarioRanges:   rangesScenario,
		ScenarioRelay:    relayScenario,
		ScenarioFailover: failoverScenario,
	}
}

// flakyFaults cuts every body of 5% of the blobs half-way (a client that
// resumes with Range gets the rest) and answers 2% of all requests 503.
func flakyFaults(set *pullSet) []fault.Fault {
	var eligible []string
	for _, d := range slices.Sorted(maps.Keys(set.blobs)) {
		if set.blobs[d] >= 4<<10 {
			eligible = append(eligible, d)
		}
	}
	n := max(1, int(float64(len(set.blobs))*flakyCutShare+0.5))
	var fs []fault.Fault
	for i := 0; i < len(eligible) && len(fs) < n; i += max(1, len(eligible)/n) {
		cut := (set.blobs[eligible[i]] + 1) / 2
		fs = append(fs, fault.Fault{Kind: fault.KindBlobData, Digest: eligible[i], Cut: &cut})
	}
	return append(fs, fault.Fault{Kind: fault.KindAny, Status: http.StatusServiceUnavailable, ErrorRate: flakyErrorRate})
}

// prime pulls the set once through the target (not measured) so it is
// warm; on a cluster, through every replica, so each has it in its spool.
func (env *runEnv) prime(ctx context.Context) error {
	for _, inst := range env.inst.members() {
		n := newNode(inst)
		n.pull(ctx, env.set.images)
		n.close()
		if r := n.result(); r.Failed != nil {
			return fmt.Errorf("priming pull through %s: %w", inst.name, r.Failed)
		}
	}
	return nil
}

// procMeter measures a target's child processes' RSS and CPU over the
// measured part of a run, summed (the replicas of a cluster).
type procMeter struct {
	pids []int
	idle []procSample
}

func startMeter(pids ...int) *procMeter {
	m := &procMeter{}
	for _, pid := range pids {
		resetPeakRSS(pid)
		if s, err := readProc(pid); err == nil {
			m.pids, m.idle = append(m.pids, pid), append(m.idle, s)
		}
	}
	if len(m.pids) == 0 {
		return nil
	}
	return m
}

// stop sums the processes still running (a killed replica is left out).
func (m *procMeter) stop(served int64) *Proc {
	if m == nil {
		return nil
	}
	p := &Proc{}
	read := 0
	for i, pid := range m.pids {
		s, err := readProc(pid)
		if err != nil {
			continue
		}
		read++
		p.IdleRSS += m.idle[i].RSS
		p.PeakRSS += max(s.HWM, s.RSS)
		p.CPUS += s.CPU - m.idle[i].CPU
	}
	if read == 0 {
		return nil
	}
	p.AboveIdle = max(0, p.PeakRSS-p.IdleRSS)
	if served > 0 {
		p.CPUSPerGiB = p.CPUS / (float64(served) / (1 << 30))
	}
	return p
}

// pullNodes plays an event of n nodes arriving as arr, each pulling the
// whole set, then (rounds > 1) n fresh nodes again after they finish,
// rounds times; it measures the nodes, the emulator's counters and the
// target's process.
func (env *runEnv) pullNodes(ctx context.Context, n, rounds int, arr Arrival) RunResult {
	res, _ := env.pullOutcomes(ctx, n, rounds, arr)
	return res
}

// pullOutcomes is pullNodes, returning each node's outcome too.
func (env *runEnv) pullOutcomes(ctx context.Context, n, rounds int, arr Arrival) (RunResult, []outcome) {
	images, scope := env.images, env.scope
	if images == nil {
		images, scope = env.set.images, env.set.blobs
	}
	settledStats(ctx, env.mar) // let earlier requests (priming, a previous phase) finish counting
	env.mar.ResetStats()
	meter := startMeter(env.inst.pids()...)
	storage := startStorageMeter(ctx, env.inst)
	t0 := time.Now()
	var outs []outcome
	for r := range rounds {
		ev := &event{inst: env.inst, set: images, nodes: n, arrival: arr, start: time.Now(), first: r * n, watch: env.watch}
		if p := env.opts.NodeProgress; p != nil {
			ev.progress = func(done, running, failed int) { p(r*n+done, running, failed, n*rounds) }
		}
		var o []outcome
		if env.during == nil {
			o, _ = ev.run(ctx) // no barrier: it cannot fail
		} else {
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				o, _ = ev.run(ctx)
			}()
			env.during(ctx, finished)
			<-finished
		}
		for i := range o {
			o[i].index += r * n
		}
		outs = append(outs, o...)
	}
	res := RunResult{WallS: time.Since(t0).Seconds(), Clients: n * rounds}
	if !arr.IsStorm() {
		res.Arrival = arr.String()
	}
	res.fromOutcomes(outs, t0, images)
	if res.WallS > 0 {
		res.MBps = float64(res.Bytes) / res.WallS / 1e6
	}
	res.Proc = meter.stop(res.Bytes)
	res.Upstream = upstreamStats(settledStats(ctx, env.mar), scope)
	res.StorageRequests = storage.stop(ctx) // after the settle: links end after the bytes
	return res, outs
}

// fromOutcomes fills the per-node figures from the nodes of one machine:
// exact distributions of the raw samples, the tally and the raw records.
func (res *RunResult) fromOutcomes(outs []outcome, start time.Time, set []image) {
	var ttfb []time.Duration
	var t Tally
	perImage := make([][]float64, len(set))
	failedImage := make([]int, len(set))
	for _, o := range outs {
		r := o.res
		res.PullS = append(res.PullS, r.Duration.Seconds())
		ttfb = append(ttfb, r.TTFB...)
		t.add(r)
		if r.Failed != nil && res.FirstFailure == "" {
			res.FirstFailure = r.Failed.Error()
		}
		for i, d := range r.Images {
			if d > 0 {
				perImage[i] = append(perImage[i], d.Seconds())
			} else {
				failedImage[i]++
			}
		}
		res.PerNode = append(res.PerNode, record(o, 0, start))
	}
	res.setTally(t)
	res.Pull = Summarize(res.PullS)
	res.TTFB = Summarize(seconds(ttfb))
	for i, im := range set {
		res.Images = append(res.Images, ImageStat{Image: im.name, Pull: Summarize(perImage[i]), Failed: failedImage[i]})
	}
}

// settledStats returns the emulator's counters once they stop moving: a
// request is counted when its handler returns, which can be just after the
// client has read the last byte.
func settledStats(ctx context.Context, m *mar.Server) mar.Stats {
	st := m.Stats()
	deadline := time.Now().Add(2 * time.Second)
	for stable := 0; stable < 3 && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
		next := m.Stats()
		if next.Total() == st.Total() && next.BytesSent == st.BytesSent {
			stable++
		} else {
			stable = 0
		}
		st = next
	}
	return st
}

// upstreamStats reads the emulator's counters for the blobs in scope.
func upstreamStats(st mar.Stats, blobs map[string]int64) Upstream {
	u := Upstream{
		Source:       sourceMAR,
		Requests:     st.Total(),
		Bytes:        st.BytesSent,
		Blobs:        len(blobs),
		ManifestGETs: st.Sum(mar.Filter{Method: http.MethodGet, Kind: mar.KindManifest}).Count,
		ByKind:       map[string]int64{},
	}
	for _, r := range st.Requests {
		u.ByKind[fmt.Sprintf("%s %s %d", r.Method, r.Kind, r.Status)] += r.Count
	}
	for code, n := range st.Statuses {
		if c, _ := strconv.Atoi(code); c == 0 || c == http.StatusTooManyRequests || c >= 500 {
			u.Errors += n
		}
	}
	u.FetchesPerBlobMin = -1
	for _, d := range slices.Sorted(maps.Keys(blobs)) {
		data := st.Sum(mar.Filter{Method: http.MethodGet, Kind: mar.KindBlobData, Digest: d})
		ds := DigestStat{Digest: d, Size: blobs[d], Fetches: st.Fetches(d), GETs: data.Count, Bytes: data.Bytes}
		u.PerDigest = append(u.PerDigest, ds)
		u.BlobFetches += ds.Fetches
		u.BlobDataGETs += ds.GETs
		u.BlobBytes += ds.Bytes
		u.BlobSize += ds.Size
		u.FetchesPerBlobMax = max(u.FetchesPerBlobMax, ds.Fetches)
		if u.FetchesPerBlobMin < 0 || ds.Fetches < u.FetchesPerBlobMin {
			u.FetchesPerBlobMin = ds.Fetches
		}
	}
	if u.FetchesPerBlobMin < 0 {
		u.FetchesPerBlobMin = 0
	}
	if u.BlobSize > 0 {
		u.BytesRatio = float64(u.BlobBytes) / float64(u.BlobSize)
	}
	return u
}
