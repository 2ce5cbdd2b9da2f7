package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock/airlock/internal/units"
)

// The airlock-cluster target: clusterReplicas airlock replicas ("serve"
// children, like the airlock target) on one storage account (an Azurite
// the target starts per run), one cluster, behind the emulator. Nodes are
// spread over the replicas round-robin (node i talks to replica i mod 3)
// and turn to the next replica after a failed request, as containerd
// turns to the next mirror of hosts.toml and a node's connections to a
// Service move to another endpoint.
const (
	clusterReplicas  = 3
	clusterLease     = 15 * time.Second // cluster.leaseDuration: the failover target is this + 2 s
	clusterContainer = "airlock"
	clusterSettle    = 60 * time.Second // replicas ready and seeing each other live
)

// Default size of the failover scenario's big blob; its upstream is paced
// so that its fill takes failoverFill.
const defaultFailoverSize = 16 << 20

// ClusterOptions are what the airlock-cluster target needs from the
// command that runs the bench (cmd/airlock wires them: the bench imports
// no implementation).
type ClusterOptions struct {
	// Storage starts the storage account the replicas share (Azurite)
	// with its data in dir and its output to log. nil: the target cannot
	// run.
	Storage func(ctx context.Context, dir string, log io.Writer) (*Account, error)
	// Owner returns the replica of peers (host:port, as cluster.peers)
	// that owns key (a blob's digest) by the replicas' rendezvous hashing
	// (cache/cluster's Owner). nil: the relay and failover scenarios
	// cannot run.
	Owner func(key string, peers []string) string
	// FailoverSize is the size of the failover scenario's big blob;
	// default 16 MiB.
	FailoverSize int64
	// StorageLatency is added to every request of the replicas to their
	// storage account (by a proxy in front of it), as the round trip to
	// Azure Blob Storage would be; 0: none (Azurite on this machine).
	StorageLatency time.Duration
}

// Account is a started storage account the replicas share.
type Account struct {
	ServiceURL string // the account's blob endpoint, e.g. http://127.0.0.1:PORT/devstoreaccount1
	Name, Key  string
	Stop       func() // stops it; the data goes with the run's directory
}

func (c *ClusterOptions) defaults() {
	if c.FailoverSize <= 0 {
		c.FailoverSize = defaultFailoverSize
	}
}

// clusterOnly reports whether a scenario runs on airlock-cluster alone.
func clusterOnly(scenario string) bool {
	return scenario == ScenarioRelay || scenario == ScenarioFailover
}

// scenariosFor is every scenario the targets run: the cluster's own only
// with airlock-cluster among them.
func scenariosFor(targets []string) []string {
	var out []string
	for _, s := range Scenarios() {
		if !clusterOnly(s) || slices.Contains(targets, TargetCluster) {
			out = append(out, s)
		}
	}
	return out
}

// validateCluster checks the cluster scenarios' options; errors wrap
// ErrUsage.
func (o *Options) validateCluster() error {
	for _, s := range o.Scenarios {
		if clusterOnly(s) && !slices.Contains(o.Targets, TargetCluster) {
			return fmt.Errorf("%w: scenario %s runs on target %s only: add it to --targets", ErrUsage, s, TargetCluster)
		}
	}
	if d := o.Cluster.StorageLatency; d < 0 || d > maxStorageLatency {
		return fmt.Errorf("%w: --storage-latency %s: want 0 to %s", ErrUsage, d, maxStorageLatency)
	}
	if slices.Contains(o.Scenarios, ScenarioFailover) && o.Cluster.FailoverSize < 1<<20 {
		return fmt.Errorf("%w: --failover-size %d: want at least 1MiB", ErrUsage, o.Cluster.FailoverSize)
	}
	return nil
}

// check says what the selected cluster target and scenarios miss.
func (c *ClusterOptions) check(o *Options) error {
	if !slices.Contains(o.Targets, TargetCluster) {
		return nil
	}
	switch {
	case len(o.AirlockCmd) == 0:
		return errors.New("no command to start airlock")
	case c.Storage == nil:
		return errors.New("no storage account to start for " + TargetCluster)
	case c.Owner == nil && (slices.Contains(o.Scenarios, ScenarioRelay) || slices.Contains(o.Scenarios, ScenarioFailover)):
		return errors.New("no owner function for the relay and failover scenarios")
	}
	return nil
}

// replicaSet is a started airlock-cluster: its replicas in peer order.
type replicaSet struct {
	replicas []*instance
	peers    []string // host:port of each replica, as cluster.peers
	mu       sync.Mutex
	killed   []bool
}

// members returns the instances a target serves through: the replicas of
// a cluster, else the instance itself.
func (i *instance) members() []*instance {
	if i.cluster == nil {
		return []*instance{i}
	}
	return i.cluster.replicas
}

// forNode returns the instance node i talks to first: its replica,
// round-robin.
func (i *instance) forNode(n int) *instance {
	m := i.members()
	return m[n%len(m)]
}

// pids returns the target's child processes.
func (i *instance) pids() []int {
	var out []int
	for _, m := range i.members() {
		if m.pid != 0 {
			out = append(out, m.pid)
		}
	}
	return out
}

// kill ends replica r with SIGKILL, as a node losing power would.
func (rs *replicaSet) kill(r int) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.killed[r] {
		return nil
	}
	p, err := os.FindProcess(rs.replicas[r].pid)
	if err == nil {
		err = p.Kill()
	}
	if err != nil {
		return fmt.Errorf("kill replica %d (pid %d): %w", r+1, rs.replicas[r].pid, err)
	}
	rs.killed[r] = true
	return nil
}

// stop stops every replica the scenario did not kill (SIGTERM), then
// reaps the killed ones.
func (rs *replicaSet) stop() error {
	errs := make([]error, len(rs.replicas))
	var wg sync.WaitGroup
	for r, inst := range rs.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := inst.stop()
			rs.mu.Lock()
			killed := rs.killed[r]
			rs.mu.Unlock()
			if !killed && err != nil {
				errs[r] = fmt.Errorf("replica %d: %w", r+1, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// clusterTarget starts the storage account, then clusterReplicas
// "<cmd> serve" children on it in one cluster, and waits until each sees
// every replica live. The instance's URL is the first replica's.
func clusterTarget(cmd, env []string, co ClusterOptions) target {
	return targetFunc(func(ctx context.Context, se startEnv) (*instance, error) {
		if co.Storage == nil {
			return nil, errors.New("no storage account to start for " + TargetCluster)
		}
		azlog, err := os.Create(filepath.Join(se.dir, "azurite.log"))
		if err != nil {
			return nil, err
		}
		acc, err := co.Storage(ctx, filepath.Join(se.dir, "azurite"), azlog)
		if err != nil {
			azlog.Close()
			return nil, fmt.Errorf("%s: %w", TargetCluster, err)
		}
		if co.StorageLatency > 0 {
			delayed, err := delayedAccount(acc, co.StorageLatency)
			if err != nil {
				acc.Stop()
				azlog.Close()
				return nil, fmt.Errorf("%s: %w", TargetCluster, err)
			}
			acc = delayed
		}
		stopStorage := func() { acc.Stop(); azlog.Close() }
		rs, err := startReplicas(ctx, cmd, env, se, acc)
		if err != nil {
			stopStorage()
			return nil, err
		}
		first := rs.replicas[0]
		return &instance{name: TargetCluster, url: first.url, prefix: AirlockPrefix, cluster: rs, stop: func() error {
			err := rs.stop()
			stopStorage()
			return err
		}}, nil
	})
}

// startReplicas starts the replicas on acc and waits until they form one
// cluster.
func startReplicas(ctx context.Context, cmd, env []string, se startEnv, acc *Account) (*replicaSet, error) {
	peers, err := freeAddrs(clusterReplicas)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TargetCluster, err)
	}
	rs := &replicaSet{replicas: make([]*instance, len(peers)), peers: peers, killed: make([]bool, len(peers))}
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for r := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs.replicas[r], errs[r] = startReplica(ctx, cmd, env, se, acc, peers, r)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, inst := range rs.replicas {
			if inst != nil {
				_ = inst.stop()
			}
		}
		return nil, err
	}
	if err := waitSettled(ctx, rs, se.dir); err != nil {
		_ = rs.stop()
		return nil, err
	}
	return rs, nil
}

// startReplica writes replica r's configuration and starts it.
func startReplica(ctx context.Context, cmd, env []string, se startEnv, acc *Account, peers []string, r int) (*instance, error) {
	name := fmt.Sprintf("%s-%d", TargetCluster, r+1)
	head := fmt.Sprintf(`listen: %s
storage:
  dir: %s
  driver: azure
  azure:
    serviceURL: %s
    accountName: %s
    accountKeyEnv: AIRLOCK_BENCH_STORAGE_KEY
    container: %s
cluster:
  self: %s
  peers: [%s]
  leaseDuration: %s
`, peers[r], filepath.Join(se.dir, name), acc.ServiceURL, acc.Name, clusterContainer,
		peers[r], strings.Join(peers, ", "), units.Duration(clusterLease))
	return startAirlock(ctx, name, cmd, append(append([]string(nil), env...), "AIRLOCK_BENCH_STORAGE_KEY="+acc.Key), se, head)
}

// freeAddrs returns n loopback addresses free a moment ago: the replicas
// must know each other's before any starts.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// waitSettled waits until every replica is ready (/readyz: its store
// answers) and counts all of them live (airlock_cluster_peers{state=
// "live"}), so that a run measures one cluster serving, not three
// replicas starting alone. (The collection each replica runs at start
// first waits for the other replicas' reads to settle into the shared
// log, over a minute; fills wait only for its short decide-and-delete
// part, so a run need not wait for it.)
func waitSettled(ctx context.Context, rs *replicaSet, dir string) error {
	deadline := time.Now().Add(clusterSettle)
	for {
		var err error
		for _, inst := range rs.replicas {
			if err = settled(ctx, inst, len(rs.replicas)); err != nil {
				break
			}
		}
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("%s: not settled after %s: %w%s", TargetCluster, clusterSettle, err, logTail(filepath.Join(dir, rs.replicas[0].name+".log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settled says what replica inst of n still lacks, nil when nothing.
func settled(ctx context.Context, inst *instance, n int) error {
	live, err := scrape(ctx, inst.url, "airlock_cluster_peers", `state="live"`)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", inst.name, err)
	case live != float64(n):
		return fmt.Errorf("%s sees %.0f of %d replicas live", inst.name, live, n)
	}
	return readyz(ctx, inst)
}

// readyz says why inst is not ready (GET /readyz), nil when it is.
func readyz(ctx context.Context, inst *instance) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, inst.url+"/readyz", nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: readyz: %w", inst.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s not ready: %s", inst.name, strings.TrimSpace(string(b)))
	}
	return nil
}
