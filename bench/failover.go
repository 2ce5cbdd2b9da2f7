package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
)

// The failover scenario: a storm on airlock-cluster in which every node
// pulls a big image first (one blob, ClusterOptions.FailoverSize, its
// upstream paced so that its fill takes failoverFill), then the bootstrap
// set. Once a node has received failoverKillAt of the big blob, the
// replica owning it (the one filling it from the upstream) is killed with
// SIGKILL. Its nodes' transfers break and they retry once on the next
// replica; the survivors' relays go on from the replica that takes the
// fill over.
const (
	failoverFill   = 4 * time.Second
	failoverKillAt = 4 // the kill comes once a node has 1/failoverKillAt of the blob
)

// failoverRef is the extra image holding the failover scenario's blob.
var failoverRef = catalog.Ref{Repo: "bench/failover", Tag: "v1"}

// FailoverRun is what the failover scenario measured in one run, beside
// the storm's figures.
type FailoverRun struct {
	Killed        string  `json:"killed"`        // the replica killed (host:port): the big blob's owner
	KilledAtS     float64 `json:"killedAtS"`     // since the storm started
	KilledAtBytes int64   `json:"killedAtBytes"` // most bytes of the big blob a node had then
	BlobSize      int64   `json:"blobSize"`
	LeaseS        float64 `json:"leaseS"` // the replicas' cluster.leaseDuration
	// RecoveryS is the longest wait after the kill for a byte of a body
	// under way at the kill, on the nodes of the surviving replicas.
	RecoveryS float64 `json:"recoveryS"`
	// ResumeS is the longest wait after the kill for a byte of the big
	// blob, over every node (those of the killed replica included, their
	// retry on another replica with it).
	ResumeS float64 `json:"resumeS"`
	// StallS is the longest silence of any blob GET (the wait for its
	// first byte included) that ended after the kill, on the nodes of the
	// surviving replicas.
	StallS        float64 `json:"stallS"`
	SurvivorNodes int     `json:"survivorNodes"` // nodes whose replica survived
	OrphanNodes   int     `json:"orphanNodes"`   // nodes of the killed replica
	MovedNodes    int     `json:"movedNodes"`    // nodes that turned to another replica
	OrphansFailed int     `json:"orphansFailed"` // nodes of the killed replica that failed a pull after one retry
	Takeovers     float64 `json:"takeovers"`     // airlock_cluster_takeovers_total on the survivors
	BlobGETs      int64   `json:"blobUpstreamGETs"`
	BlobBytes     int64   `json:"blobUpstreamBytes"`
	BytesRatio    float64 `json:"blobBytesRatio"` // BlobBytes / BlobSize
}

// blobWatch follows one blob across a storm's nodes: the most bytes of it
// any node has received, and when its filler was killed.
type blobWatch struct {
	digest v1.Hash
	seen   atomic.Int64 // most bytes any node has received
	killed atomic.Int64 // unix nanoseconds of the kill; 0 before
}

func (w *blobWatch) saw(got int64) {
	for {
		cur := w.seen.Load()
		if got <= cur || w.seen.CompareAndSwap(cur, got) {
			return
		}
	}
}

func (w *blobWatch) killedAt() time.Time {
	if ns := w.killed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// stallClock measures one blob transfer of a node: its longest silence,
// from the first request on (the wait for the first byte and a resume
// included). With a watch it also measures, once the kill happened, the
// longest silence that ended after it, and the longest wait after it for
// a byte of the body when that was under way at the kill, and of the
// watched blob. It is used by one goroutine.
type stallClock struct {
	first, last time.Time
	max         time.Duration
	watch       *blobWatch // nil: no kill to follow
	watched     bool       // this is the watched blob
	got         int64      // bytes of the watched blob
	killStall   time.Duration
	killResume  time.Duration
	killGap     time.Duration
}

// request notes that a request for the blob was sent.
func (c *stallClock) request(now time.Time) {
	if c.last.IsZero() {
		c.last = now
	}
}

// tick notes k bytes arriving at now.
func (c *stallClock) tick(now time.Time, k int64) {
	gap := now.Sub(c.last)
	c.max = max(c.max, gap)
	if c.watch == nil {
		c.last = now
		return
	}
	if kt := c.watch.killedAt(); !kt.IsZero() && now.After(kt) {
		c.killStall = max(c.killStall, gap)
		// Bytes already on their way at the kill arrive first: a wait
		// after it is from the later of the kill and the previous byte.
		wait := now.Sub(later(c.last, kt))
		if !c.first.IsZero() && c.first.Before(kt) {
			c.killResume = max(c.killResume, wait)
		}
		if c.watched {
			c.killGap = max(c.killGap, wait)
		}
	}
	if c.watched {
		c.got += k
		c.watch.saw(c.got)
	}
	if c.first.IsZero() {
		c.first = now
	}
	c.last = now
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// failoverScenario runs the storm, kills the big blob's owner mid-fill
// and measures what the nodes saw.
func failoverScenario(ctx context.Context, env *runEnv) ([]phaseResult, error) {
	rs := env.inst.cluster
	big := env.set.failover
	switch {
	case rs == nil:
		return nil, fmt.Errorf("failover: runs on %s only", TargetCluster)
	case big.Size == 0:
		return nil, errors.New("failover: the big blob was not generated")
	}
	victim := slices.Index(rs.peers, env.opts.Cluster.Owner(big.Digest.String(), rs.peers))
	if victim < 0 {
		return nil, errors.New("failover: the big blob's owner is none of the replicas")
	}
	bw := max(1, big.Size*int64(time.Second)/int64(failoverFill))
	if err := env.mar.SetFaults(fault.Fault{Kind: fault.KindBlobData, Digest: big.Digest.String(), Bandwidth: bw}); err != nil {
		return nil, err
	}
	watch := &blobWatch{digest: big.Digest}
	env.images = append([]image{imageOf(failoverRef)}, env.set.images...)
	env.scope = maps.Clone(env.set.blobs)
	env.scope[big.Digest.String()] = big.Size
	env.watch = watch
	var started, killedAt time.Time
	var killedBytes int64
	var killErr error
	env.during = func(ctx context.Context, finished <-chan struct{}) {
		started = time.Now()
		killedAt, killedBytes, killErr = killWhenFilling(ctx, rs, victim, watch, big.Size/failoverKillAt, finished)
	}
	run, outs := env.pullOutcomes(ctx, env.opts.Nodes, 1, Arrival{})
	if killErr != nil {
		return nil, fmt.Errorf("failover: %w", killErr)
	}
	f := &FailoverRun{Killed: rs.peers[victim], KilledAtS: killedAt.Sub(started).Seconds(), KilledAtBytes: killedBytes,
		BlobSize: big.Size, LeaseS: clusterLease.Seconds()}
	for _, o := range outs {
		r := o.res
		if r.Moves > 0 {
			f.MovedNodes++
		}
		f.ResumeS = max(f.ResumeS, r.KillGap.Seconds())
		if o.index%len(rs.replicas) == victim {
			f.OrphanNodes++
			if r.Failed != nil {
				f.OrphansFailed++
			}
			continue
		}
		f.SurvivorNodes++
		f.RecoveryS = max(f.RecoveryS, r.KillResume.Seconds())
		f.StallS = max(f.StallS, r.KillStall.Seconds())
	}
	for r, inst := range rs.replicas {
		if r == victim {
			continue
		}
		n, err := scrape(ctx, inst.url, "airlock_cluster_takeovers_total", "")
		if err != nil {
			return nil, fmt.Errorf("failover: %s: %w", inst.name, err)
		}
		f.Takeovers += n
	}
	for _, d := range run.Upstream.PerDigest {
		if d.Digest == big.Digest.String() {
			f.BlobGETs, f.BlobBytes = d.GETs, d.Bytes
			f.BytesRatio = float64(d.Bytes) / float64(big.Size)
		}
	}
	run.Failover = f
	return []phaseResult{{"", run}}, nil
}

// killWhenFilling kills replica victim once some node has received at
// bytes of the watched blob, and returns when, and how many bytes the
// furthest node had. It fails when the nodes finished first.
func killWhenFilling(ctx context.Context, rs *replicaSet, victim int, w *blobWatch, at int64, finished <-chan struct{}) (time.Time, int64, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if seen := w.seen.Load(); seen >= at {
			err := rs.kill(victim)
			now := time.Now()
			w.killed.Store(now.UnixNano())
			return now, seen, err
		}
		select {
		case <-finished:
			return time.Time{}, 0, fmt.Errorf("the nodes finished before any had %d bytes of the big blob (%d)", at, w.seen.Load())
		case <-ctx.Done():
			return time.Time{}, 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// writeFailover lists the failover scenario's runs for a terminal.
func (rep *Report) writeFailover(w io.Writer) {
	r, ok := rep.Result(ScenarioFailover, "", TargetCluster)
	if !ok {
		return
	}
	fmt.Fprintln(w, "\nfailover runs (the big blob's owner killed mid-fill):")
	for _, run := range r.Runs {
		f := run.Failover
		if f == nil {
			fmt.Fprintf(w, "  run %d: %s\n", run.Run, run.Error)
			continue
		}
		fmt.Fprintf(w, "  run %d: killed %s at %.2f s (%.1f of %.1f MiB on the furthest node); recovery %.2f s (big blob %.2f s, longest silence %.2f s);"+
			" %d of %d orphan nodes failed, %d nodes moved, %d retries, %d corrupt; %.0f takeovers; big blob upstream %d GETs, %.2f×\n",
			run.Run, f.Killed, f.KilledAtS, float64(f.KilledAtBytes)/mib, float64(f.BlobSize)/mib, f.RecoveryS, f.ResumeS, f.StallS,
			f.OrphansFailed, f.OrphanNodes, f.MovedNodes, run.Retries, run.Corrupt, f.Takeovers, f.BlobGETs, f.BytesRatio)
	}
}
