package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	refs  []catalog.Ref
	blobs map[string]int64 // digest -> size
	size  int64
	large catalog.Blob // the ranges blob, when generated
}

// newPullSet reads the bootstrap set of minor from the catalog.
func newPullSet(cat *catalog.Catalog, minor string) (*pullSet, error) {
	refs, err := catalog.BootstrapSet(minor)
	if err != nil {
		return nil, err
	}
	ps := &pullSet{refs: refs, blobs: map[string]int64{}}
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

// digests returns the set's blob digests, sorted.
func (ps *pullSet) digests() []string {
	out := make([]string, 0, len(ps.blobs))
	for d := range ps.blobs {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// runEnv is one run of one scenario on one started target.
type runEnv struct {
	opts *Options
	mar  *mar.Server
	inst *instance
	set  *pullSet
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
			return one("", env.pullNodes(ctx, 1, 1)), nil
		},
		ScenarioWarm: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			if err := env.prime(ctx); err != nil {
				return nil, err
			}
			return one("", env.pullNodes(ctx, 1, warmRounds(env.set.size))), nil
		},
		ScenarioStorm: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			// The same storm again on the now warm cache: the fastest this
			// machine runs it, a reference for the cold storm.
			cold := env.pullNodes(ctx, env.opts.Nodes, 1)
			return []phaseResult{{"", cold}, {"warm", env.pullNodes(ctx, env.opts.Nodes, 1)}}, nil
		},
		ScenarioFlaky: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			if err := env.mar.SetFaults(flakyFaults(env.set)...); err != nil {
				return nil, err
			}
			return one("", env.pullNodes(ctx, env.opts.Nodes, 1)), nil
		},
		ScenarioUpstreamSlow: func(ctx context.Context, env *runEnv) ([]phaseResult, error) {
			err := env.mar.SetFaults(
				fault.Fault{Kind: fault.KindBlobData, Bandwidth: slowBandwidth},
				fault.Fault{Kind: fault.KindAny, Delay: fault.Duration(slowHeaderDelay)})
			if err != nil {
				return nil, err
			}
			return one("", env.pullNodes(ctx, 1, 1)), nil
		},
		ScenarioRanges: rangesScenario,
	}
}

// flakyFaults cuts every body of 5% of the blobs half-way (a client that
// resumes with Range gets the rest) and answers 2% of all requests 503.
func flakyFaults(set *pullSet) []fault.Fault {
	var eligible []string
	for _, d := range set.digests() {
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

// prime pulls the set once through the target (not measured) so it is warm.
func (env *runEnv) prime(ctx context.Context) error {
	n := newNode(env.inst)
	defer n.close()
	n.pull(ctx, env.set.refs)
	if r := n.result(); r.Failed != nil {
		return fmt.Errorf("priming pull: %w", r.Failed)
	}
	return nil
}

// procMeter measures a child's RSS and CPU over the measured part of a run.
type procMeter struct {
	pid  int
	idle procSample
}

func startMeter(pid int) *procMeter {
	if pid == 0 {
		return nil
	}
	resetPeakRSS(pid)
	s, err := readProc(pid)
	if err != nil {
		return nil
	}
	return &procMeter{pid: pid, idle: s}
}

func (m *procMeter) stop(served int64) *Proc {
	if m == nil {
		return nil
	}
	s, err := readProc(m.pid)
	if err != nil {
		return nil
	}
	p := &Proc{IdleRSS: m.idle.RSS, PeakRSS: max(s.HWM, s.RSS), CPUS: s.CPU - m.idle.CPU}
	p.AboveIdle = max(0, p.PeakRSS-p.IdleRSS)
	if served > 0 {
		p.CPUSPerGiB = p.CPUS / (float64(served) / (1 << 30))
	}
	return p
}

// pullNodes starts n nodes at the same instant, each pulling the whole set,
// then (rounds > 1) n fresh nodes again after they finish, rounds times; it
// measures the nodes, the emulator's counters and the target's process.
func (env *runEnv) pullNodes(ctx context.Context, n, rounds int) RunResult {
	nodes := make([]*node, n*rounds)
	for i := range nodes {
		nodes[i] = newNode(env.inst)
		defer nodes[i].close()
	}
	settledStats(ctx, env.mar) // let earlier requests (priming, a previous phase) finish counting
	env.mar.ResetStats()
	meter := startMeter(env.inst.pid)
	t0 := time.Now()
	for r := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, nd := range nodes[r*n : (r+1)*n] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				nd.pull(ctx, env.set.refs)
			}()
		}
		close(start)
		wg.Wait()
	}
	res := RunResult{WallS: time.Since(t0).Seconds(), Clients: n * rounds}
	var ttfb []time.Duration
	for _, nd := range nodes {
		r := nd.result()
		res.PullS = append(res.PullS, r.Duration.Seconds())
		ttfb = append(ttfb, r.TTFB...)
		res.Bytes += r.Bytes
		res.Requests += r.Requests
		res.Errors += r.Errors
		res.Retries += r.Retries
		res.Corrupt += r.Corrupt
		if r.Failed != nil {
			res.FailedPulls++
			if res.FirstFailure == "" {
				res.FirstFailure = r.Failed.Error()
			}
		}
	}
	res.Pull = Summarize(res.PullS)
	res.TTFB = Summarize(seconds(ttfb))
	if res.WallS > 0 {
		res.MBps = float64(res.Bytes) / res.WallS / 1e6
	}
	res.Proc = meter.stop(res.Bytes)
	res.Upstream = upstreamStats(settledStats(ctx, env.mar), env.set.blobs)
	return res
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
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	u.FetchesPerBlobMin = -1
	for _, d := range digests {
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

// rangesScenario resolves the large image, then issues RangeCount concurrent
// Range GETs of RangeSize over its blob: cold (empty cache), then warm.
func rangesScenario(ctx context.Context, env *runEnv) ([]phaseResult, error) {
	b := env.set.large
	if b.Size == 0 {
		return nil, errors.New("ranges: the large blob was not generated")
	}
	want, err := rangeHashes(b, env.opts.RangeSize, env.opts.RangeCount)
	if err != nil {
		return nil, err
	}
	n := newNode(env.inst)
	defer n.close()
	if err := n.resolve(ctx, largeRef); err != nil {
		return nil, fmt.Errorf("ranges: %w", err)
	}
	scope := map[string]int64{b.Digest.String(): b.Size}
	cold := env.ranges(ctx, n, b, want, scope)
	// Make sure the whole blob is cached before the warm phase (a proxy may
	// not keep what it streamed for ranges).
	prs := []phaseResult{{"cold", cold}}
	if err := n.blob(ctx, n.client(largeRef.Repo), largeRef.Repo, v1.Descriptor{Digest: b.Digest, Size: b.Size}); err != nil {
		return prs, fmt.Errorf("ranges: full GET before the warm phase: %w", err)
	}
	if err := waitRangeable(ctx, n.client(largeRef.Repo), env.inst.url+"/v2/"+env.inst.prefix+largeRef.Repo+"/blobs/"+b.Digest.String()); err != nil {
		return prs, fmt.Errorf("ranges: before the warm phase: %w", err)
	}
	return append(prs, phaseResult{"warm", env.ranges(ctx, n, b, want, scope)}), nil
}

// waitRangeable waits until a one-byte Range GET of url answers 206: a
// proxy may commit a blob to its store only after the client got the last
// byte, and answer 200 from upstream until then. A 200 is read to the end
// (a proxy may only keep what a client read whole).
func waitRangeable(ctx context.Context, c *http.Client, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Range", "bytes=0-0")
		resp, err := c.Do(req)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusPartialContent {
				return nil
			}
			err = fmt.Errorf("Range GET: %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("Range still not honoured after 60s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resolve fetches r's manifest (what a client does before its blobs).
func (n *node) resolve(ctx context.Context, r catalog.Ref) error {
	t, err := n.transport(ctx, r.Repo)
	if err != nil {
		return err
	}
	_, err = n.headAndGet(ctx, t, r)
	return err
}

// rangeHashes returns the sha256 of each range of the blob file.
func rangeHashes(b catalog.Blob, size int64, count int) ([][]byte, error) {
	f, err := b.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	for i := range count {
		h := sha256.New()
		if _, err := f.Seek(int64(i)*size, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := io.CopyN(h, f, size); err != nil {
			return nil, fmt.Errorf("ranges: read blob: %w", err)
		}
		out = append(out, h.Sum(nil))
	}
	return out, nil
}

// ranges runs the concurrent Range GETs once and measures them.
func (env *runEnv) ranges(ctx context.Context, n *node, b catalog.Blob, want [][]byte, scope map[string]int64) RunResult {
	size := env.opts.RangeSize
	settledStats(ctx, env.mar) // let earlier requests (priming, a previous phase) finish counting
	env.mar.ResetStats()
	meter := startMeter(env.inst.pid)
	url := env.inst.url + "/v2/" + env.inst.prefix + largeRef.Repo + "/blobs/" + b.Digest.String()
	type out struct {
		dur, ttfb time.Duration
		bytes     int64
		skipped   int64 // bytes before the range in a 200 answer
		ignored   bool  // the target answered 200 to the Range GET
		err       error
		corrupt   bool
	}
	outs := make([]out, len(want))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			o := &outs[i]
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", int64(i)*size, int64(i+1)*size-1))
			resp, err := n.client(largeRef.Repo).Do(req)
			if err != nil {
				o.err = err
				return
			}
			defer resp.Body.Close()
			fr := &firstByteReader{r: resp.Body}
			switch resp.StatusCode {
			case http.StatusPartialContent:
			case http.StatusOK:
				// Range ignored: like containerd, skip to the range's start.
				o.ignored = true
				k, err := io.CopyN(io.Discard, fr, int64(i)*size)
				if o.skipped = k; err != nil {
					o.err = fmt.Errorf("range %d: 200 (Range ignored), body broke: %w", i, err)
					return
				}
			default:
				o.err = fmt.Errorf("range %d: %s", i, resp.Status)
				return
			}
			limit := size + 1 // a 206 must end after the range
			if o.ignored {
				limit = size // a whole-blob answer goes on: stop at the range's end
			}
			h := sha256.New()
			o.bytes, o.err = io.Copy(h, io.LimitReader(fr, limit))
			o.dur, o.ttfb = time.Since(t0), fr.at.Sub(t0)
			switch {
			case o.err != nil:
			case o.bytes != size:
				o.err = fmt.Errorf("range %d: %d bytes, want %d", i, o.bytes, size)
			case !slices.Equal(h.Sum(nil), want[i]):
				o.corrupt, o.err = true, fmt.Errorf("range %d: %w", i, errCorrupt)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res := RunResult{WallS: time.Since(t0).Seconds(), Clients: len(want)}
	var ttfb []float64
	for _, o := range outs {
		res.Requests++
		res.Bytes += o.bytes + o.skipped
		if o.ignored {
			res.RangeIgnored++
		}
		if o.err != nil {
			res.Errors++
			res.FailedPulls++
			if res.FirstFailure == "" {
				res.FirstFailure = o.err.Error()
			}
			if o.corrupt {
				res.Corrupt++
			}
			continue
		}
		res.PullS = append(res.PullS, o.dur.Seconds())
		ttfb = append(ttfb, o.ttfb.Seconds())
	}
	res.Pull, res.TTFB = Summarize(res.PullS), Summarize(ttfb)
	if res.WallS > 0 {
		res.MBps = float64(res.Bytes) / res.WallS / 1e6
	}
	res.Proc = meter.stop(res.Bytes)
	res.Upstream = upstreamStats(settledStats(ctx, env.mar), scope)
	return res
}
