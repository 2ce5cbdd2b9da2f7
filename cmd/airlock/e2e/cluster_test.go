package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// clusterMarArgs serve the herd's cold image and the parallel fetch's
// large one, each with its own bandwidth cap.
var clusterMarArgs = []string{
	"--extra", "herd/cold:v1=4MiB,2MiB,1MiB", "--fault", "kind=blob-data,repo=herd/cold,bw=2MiB",
	"--extra", largeImage + "=" + largeSize, "--fault", "kind=blob-data,repo=" + largeRepo + ",bw=" + largeBW,
}

// replicaCluster is n `airlock serve` processes (the built binary) of one
// cluster on one container of Azurite (storage.driver: azure).
type replicaCluster struct {
	replicas []*airlockServer
	peers    []string // cluster.self of each, in order
}

// startReplicas runs n replicas of one cluster in front of the emulator
// m, on a new container of az, and waits until each is ready and sees
// every replica live. The first has the control module that provisions
// clusters (its cluster create adds the aks-managed-mcr rule); the others
// get the same rule from their configuration.
func startReplicas(t *testing.T, ctx context.Context, az *azuritetest.Server, m *marServer, n int) *replicaCluster {
	t.Helper()
	container := azuritetest.ContainerName("e2e")
	c := &replicaCluster{}
	for range n {
		c.peers = append(c.peers, upstreamtest.Unreachable(t))
	}
	for i, self := range c.peers {
		rules := ruleYAML
		if i == 0 {
			rules = "control:\n  registry: clusterbootstrap\n"
		}
		cfg := configtest.Replica{
			Self: self, Peers: c.peers, Dir: filepath.Join(t.TempDir(), "spool"), LogLevel: "info",
			Azure:    azuretest.Config(az, container),
			Upstream: m.url, Extra: rules,
		}.YAML()
		c.replicas = append(c.replicas, startAirlockConfig(t, "", cfg))
	}
	for _, a := range c.replicas {
		eventually(t, 60*time.Second, func() (int, bool) {
			code := helperStatus(ctx, a.url+"/readyz")
			return code, code == http.StatusOK
		})
		live := eventually(t, 30*time.Second, func() (float64, bool) {
			v := a.metric(t, ctx, "airlock_cluster_peers", `state="live"`)
			return v, v == float64(n)
		})
		if live != float64(n) {
			t.Fatalf("replica %s sees %v replicas live, want %d\n%s", a.url, live, n, tail(a.Stdout.String()+a.Stderr.String(), 4000))
		}
	}
	return c
}

// helperStatus is the status of GET url from the host's namespace (0 if
// it could not be asked).
func helperStatus(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// avoiding returns p with its replicas (and their node configurations)
// reordered so that the first ones do not own key: nodes 0 and 1 then
// pull it through replicas that relay it from its owner.
func (c *replicaCluster) avoiding(p pullPath, key string) pullPath {
	owner := cluster.Owner(key, c.peers)
	var out, last pullPath
	for i, a := range p.airlocks {
		q := &out
		if a.host == owner {
			q = &last
		}
		q.airlocks, q.configs = append(q.airlocks, a), append(q.configs, p.configs[i])
	}
	out.airlocks, out.configs = append(out.airlocks, last.airlocks...), append(out.configs, last.configs...)
	return out
}

// Nodes of containerd 1.6 and 2.x pull through a cluster of three airlock
// serve processes sharing one Azure Blob Storage container (Azurite), node
// i through replica i % 3 (its hosts.toml names that replica): the pull
// scenario, a herd of nine nodes spread over the three, and (containerd 2)
// parallel ranged fetches of a large layer cold through a replica that
// does not own it, each with the cluster's truth that the upstream sent
// every blob once (the emulator's /_mar/stats).
func TestClusterOfThree(t *testing.T) {
	t.Parallel()
	needRoot(t)
	az := azuritetest.Start(t)
	for _, rel := range releases {
		t.Run(rel.name, func(t *testing.T) {
			rel.need(t)
			ctx := testContext(t, 6*time.Minute)
			m := startMar(t, "", "127.0.0.1:0", "127.0.0.1:0", clusterMarArgs...)
			c := startReplicas(t, ctx, az, m, 3)
			r1, r2, r3 := c.replicas[0], c.replicas[1], c.replicas[2]
			p := provisionPath(t, ctx, r1, "aks1", r1, r2, r3)
			pullScenario(t, ctx, rel, m, p)
			herdScenario(t, ctx, rel, m, p, 9)
			if rel.v2() {
				img := mustImage(t, m.images(t, ctx), largeImage)
				pm, _ := img.Platform("linux/amd64")
				parallelFetchScenario(t, ctx, m, c.avoiding(p, pm.Layers[0].Digest.String()))
			}
			relayed := p.metric(t, ctx, "airlock_cluster_relayed_bytes_total")
			owner := p.metric(t, ctx, "airlock_cluster_fills_total", `role="owner"`)
			relays := p.metric(t, ctx, "airlock_cluster_fills_total", `role="relay"`)
			if relayed == 0 || owner == 0 || relays == 0 {
				t.Errorf("the replicas did not share their fills: %v bytes relayed, %v owner fills, %v relay fills", relayed, owner, relays)
			}
			t.Logf("%s through 3 replicas: %v owner fills, %v relay fills, %.1f MiB relayed between replicas",
				rel.name, owner, relays, relayed/(1<<20))
		})
	}
}
