package bench

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// clusterOptions starts an Azurite per cluster (skipped without it, naming
// the install command; failed with CI=true).
func clusterOptions(t *testing.T) ClusterOptions {
	co := ClusterOptions{Owner: cluster.Owner, FailoverSize: 4 << 20,
		Storage: func(_ context.Context, _ string, _ io.Writer) (*Account, error) {
			s := azuritetest.Start(t)
			return &Account{ServiceURL: s.ServiceURL, Name: s.AccountName, Key: s.AccountKey, Stop: s.Stop}, nil
		}}
	return co
}

// startCluster starts airlock-cluster behind m; stop stops it once (the
// test's cleanup too).
func startCluster(t *testing.T, m interface {
	URL() string
	Catalog() *catalog.Catalog
}) (inst *instance, stop func() error) {
	t.Helper()
	tg := clusterTarget([]string{airlockBinary(t)}, nil, clusterOptions(t))
	inst, err := tg.start(t.Context(), startEnv{upstream: m.URL(), dir: t.TempDir(), cat: m.Catalog()})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var stopErr error
	stop = func() error { once.Do(func() { stopErr = inst.stop() }); return stopErr }
	t.Cleanup(func() { stop() })
	return inst, stop
}

// clusterEnv is a run environment on a started cluster for opts.
func clusterEnv(t *testing.T, extra []catalog.Extra, opts Options) (*runEnv, func() error) {
	t.Helper()
	m := startMAR(t, extra...)
	opts.Cluster.Owner = cluster.Owner
	opts.defaults()
	set, err := newPullSet(m.Catalog(), opts.Minor)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.addClusterExtras(m.Catalog()); err != nil {
		t.Fatal(err)
	}
	inst, stop := startCluster(t, m)
	return &runEnv{opts: &opts, mar: m, inst: inst, set: set}, stop
}

// sumMetric sums a metric over the replicas that are up.
func sumMetric(t *testing.T, rs *replicaSet, name, label string) float64 {
	t.Helper()
	var sum float64
	for r, inst := range rs.replicas {
		if rs.killed[r] {
			continue
		}
		v, err := scrape(t.Context(), inst.url, name, label)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// The airlock-cluster target: three replicas on one Azurite form one
// cluster; a storm of nodes spread over them makes exactly one upstream
// GET per blob, each blob filled once by its owner and relayed by the
// others; the relay scenario sends every other cold blob through its
// owner and the others through a non-owner; the target stops cleanly,
// leaving no process behind.
func TestBenchClusterStormAndRelay(t *testing.T) {
	t.Parallel()
	env, stop := clusterEnv(t, clusterExtras(&Options{Scenarios: []string{ScenarioRelay}}), Options{Nodes: 6})
	rs := env.inst.cluster
	if len(rs.replicas) != clusterReplicas || env.inst.url != rs.replicas[0].url || len(env.inst.pids()) != clusterReplicas {
		t.Fatalf("cluster %+v", rs)
	}
	res := env.pullNodes(t.Context(), 6, 1, Arrival{})
	if res.FailedPulls != 0 || res.Corrupt != 0 || res.Errors != 0 {
		t.Fatalf("storm: %d failed (%s), %d corrupt, %d errors", res.FailedPulls, res.FirstFailure, res.Corrupt, res.Errors)
	}
	u := res.Upstream
	if u.FetchesPerBlobMin != 1 || u.FetchesPerBlobMax != 1 || u.Blobs != len(env.set.blobs) {
		t.Fatalf("storm: %d-%d upstream fetches per blob over %d blobs, want 1", u.FetchesPerBlobMin, u.FetchesPerBlobMax, u.Blobs)
	}
	if owner := sumMetric(t, rs, "airlock_cluster_fills_total", `role="owner"`); owner != float64(len(env.set.blobs)) {
		t.Errorf("storm: %.0f owner fills in the cluster, want one per blob (%d)", owner, len(env.set.blobs))
	}
	if relays := sumMetric(t, rs, "airlock_cluster_fills_total", `role="relay"`); relays == 0 {
		t.Error("storm: no replica relayed a fill")
	}
	for _, inst := range rs.replicas { // two nodes each
		if n, err := scrape(t.Context(), inst.url, "airlock_http_requests_total", `route="blob"`); err != nil || n < float64(2*len(env.set.blobs)) {
			t.Errorf("storm: %s answered %.0f blob GETs (%v), want at least %d", inst.name, n, err, 2*len(env.set.blobs))
		}
	}
	if res.Proc == nil || res.Proc.PeakRSS == 0 {
		t.Errorf("storm: replicas not measured: %+v", res.Proc)
	}

	ownerBefore := sumMetric(t, rs, "airlock_cluster_fills_total", `role="owner"`)
	relayBefore := sumMetric(t, rs, "airlock_cluster_fills_total", `role="relay"`)
	prs, err := relayScenario(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 2 || prs[0].phase != phaseOwner || prs[1].phase != phaseNonOwner {
		t.Fatalf("relay phases %+v", prs)
	}
	for _, pr := range prs {
		r := pr.run
		if r.FailedPulls != 0 || r.Pull.N != relayBlobs/2 || r.TTFB.N != relayBlobs/2 || r.Upstream.FetchesPerBlobMin != 1 || r.Upstream.FetchesPerBlobMax != 1 {
			t.Errorf("relay %s: %d failed (%s), %d GETs, %d TTFBs, %d-%d fetches per blob", pr.phase, r.FailedPulls, r.FirstFailure, r.Pull.N, r.TTFB.N, r.Upstream.FetchesPerBlobMin, r.Upstream.FetchesPerBlobMax)
		}
	}
	if d := sumMetric(t, rs, "airlock_cluster_fills_total", `role="owner"`) - ownerBefore; d != relayBlobs {
		t.Errorf("relay: %.0f owner fills, want one per blob (%d)", d, relayBlobs)
	}
	if d := sumMetric(t, rs, "airlock_cluster_fills_total", `role="relay"`) - relayBefore; d != relayBlobs/2 {
		t.Errorf("relay: %.0f relay fills, want one per blob GET through a non-owner (%d)", d, relayBlobs/2)
	}

	pids := env.inst.pids()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("replica pid %d still there after stop: %v", pid, err)
		}
	}
}

// The failover scenario on a small catalog: the big blob's owner is the
// replica killed, once a node has a quarter of the blob; the nodes of the
// killed replica move to the next one and retry once, every pull
// completes with verified bytes, a survivor takes the fill over, and the
// upstream sends the blob at most twice. The figures are measured, not
// judged (tests are not timed).
func TestBenchFailoverBookkeeping(t *testing.T) {
	t.Parallel()
	opts := Options{Nodes: 6, Scenarios: []string{ScenarioFailover}, Cluster: ClusterOptions{FailoverSize: 4 << 20}}
	env, stop := clusterEnv(t, clusterExtras(&opts), opts)
	rs := env.inst.cluster
	big := env.set.failover
	victim := cluster.Owner(big.Digest.String(), rs.peers)
	prs, err := failoverScenario(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 1 || prs[0].run.Failover == nil {
		t.Fatalf("phases %+v", prs)
	}
	res, f := prs[0].run, prs[0].run.Failover
	t.Logf("killed %s at %.2f s; recovery %.2f s, resume %.2f s; wall %.2f s; %+v", f.Killed, f.KilledAtS, f.RecoveryS, f.ResumeS, res.WallS, *f)
	if f.Killed != victim || !rs.killed[slices.Index(rs.peers, victim)] || f.KilledAtBytes < big.Size/failoverKillAt || f.KilledAtBytes >= big.Size {
		t.Errorf("killed %s (owner %s) with %d of %d bytes on the furthest node", f.Killed, victim, f.KilledAtBytes, big.Size)
	}
	if res.FailedPulls != 0 || res.Corrupt != 0 {
		t.Errorf("%d failed (%s), %d corrupt", res.FailedPulls, res.FirstFailure, res.Corrupt)
	}
	if f.OrphanNodes != 2 || f.SurvivorNodes != 4 || f.OrphansFailed != 0 || f.MovedNodes < f.OrphanNodes || res.Retries < int64(f.OrphanNodes) {
		t.Errorf("nodes: %d orphans (%d failed), %d survivors, %d moved, %d retries", f.OrphanNodes, f.OrphansFailed, f.SurvivorNodes, f.MovedNodes, res.Retries)
	}
	if f.Takeovers < 1 || f.BlobGETs < 2 || f.BytesRatio < 1 || f.BytesRatio > failoverBytesRatio {
		t.Errorf("fill: %.0f takeovers, %d upstream GETs of the big blob, %.2f× its size", f.Takeovers, f.BlobGETs, f.BytesRatio)
	}
	if f.RecoveryS <= 0 || f.ResumeS <= 0 || f.LeaseS != clusterLease.Seconds() {
		t.Errorf("recovery %.2f s, resume %.2f s, lease %.0f s: not measured", f.RecoveryS, f.ResumeS, f.LeaseS)
	}
	if u := res.Upstream; u.Blobs != len(env.set.blobs)+1 || u.FetchesPerBlobMin != 1 {
		t.Errorf("upstream scope: %d blobs (want the set's %d and the big one), %d-%d fetches per blob", u.Blobs, len(env.set.blobs), u.FetchesPerBlobMin, u.FetchesPerBlobMax)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop after the kill: %v", err)
	}
}
