package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

// The relay scenario: relayBlobs cold blobs of relayBlobSize, GET one at a
// time, every other one through the replica owning its digest (which
// fills it from the upstream) and the others through a non-owner (which
// relays the owner's fill), alternately the two non-owners. Phases
// "owner" and "non-owner" report each path's time to first byte, in the
// same run.
const (
	relayBlobs    = 100
	relayBlobSize = 64 << 10
)

// relayRef is the extra image holding the relay scenario's blobs.
var relayRef = catalog.Ref{Repo: "bench/relay", Tag: "v1"}

// Phases of the relay scenario.
const (
	phaseOwner    = "owner"
	phaseNonOwner = "non-owner"
)

// clusterExtras are the extra images the selected cluster scenarios pull.
func clusterExtras(opts *Options) []catalog.Extra {
	var out []catalog.Extra
	if slices.Contains(opts.Scenarios, ScenarioFailover) {
		out = append(out, catalog.Extra{Repo: failoverRef.Repo, Tag: failoverRef.Tag, LayerSizes: []int64{opts.Cluster.FailoverSize}})
	}
	if slices.Contains(opts.Scenarios, ScenarioRelay) {
		sizes := make([]int64, relayBlobs)
		for i := range sizes {
			sizes[i] = relayBlobSize
		}
		out = append(out, catalog.Extra{Repo: relayRef.Repo, Tag: relayRef.Tag, LayerSizes: sizes})
	}
	return out
}

// addClusterExtras reads the cluster scenarios' blobs from the catalog,
// when generated.
func (ps *pullSet) addClusterExtras(cat *catalog.Catalog) error {
	if img, ok := cat.Image(failoverRef.Repo, failoverRef.Tag); ok {
		pm, _ := img.Platform("linux/amd64")
		if len(pm.Layers) != 1 {
			return fmt.Errorf("%s: want one layer", failoverRef)
		}
		b, err := cat.Blob(failoverRef.Repo, pm.Layers[0].Digest)
		if err != nil {
			return err
		}
		ps.failover = b
	}
	if img, ok := cat.Image(relayRef.Repo, relayRef.Tag); ok {
		pm, _ := img.Platform("linux/amd64")
		ps.relay = pm.Layers
	}
	return nil
}

// relayScenario measures cold blob GETs through owners and non-owners.
func relayScenario(ctx context.Context, env *runEnv) ([]phaseResult, error) {
	rs := env.inst.cluster
	switch {
	case rs == nil:
		return nil, fmt.Errorf("relay: runs on %s only", TargetCluster)
	case len(env.set.relay) == 0:
		return nil, errors.New("relay: the blobs were not generated")
	}
	// One node per replica and path, so that each path's samples are its
	// own; each resolves the image first, as a client would.
	phases := []string{phaseOwner, phaseNonOwner}
	nodes := make([][]*node, len(phases))
	for p := range phases {
		for _, inst := range rs.replicas {
			n := newNode(inst)
			defer n.close()
			if _, _, err := n.resolveImage(ctx, imageOf(relayRef)); err != nil {
				return nil, fmt.Errorf("relay: %s: %w", inst.name, err)
			}
			nodes[p] = append(nodes[p], n)
		}
	}
	settledStats(ctx, env.mar)
	env.mar.ResetStats()
	durs := make([][]float64, len(phases))
	scopes := []map[string]int64{{}, {}}
	fails := make([][]error, len(phases))
	for k, b := range env.set.relay {
		p := k % 2
		r := slices.Index(rs.peers, env.opts.Cluster.Owner(b.Digest.String(), rs.peers))
		if r < 0 {
			return nil, fmt.Errorf("relay: the owner of %s is none of the replicas", b.Digest)
		}
		if phases[p] == phaseNonOwner {
			r = (r + 1 + (k/2)%2) % len(rs.replicas)
		}
		n := nodes[p][r]
		t0 := time.Now()
		if err := n.blob(ctx, n.client(relayRef.Repo), relayRef.Repo, b); err != nil {
			fails[p] = append(fails[p], fmt.Errorf("via %s: %w", rs.replicas[r].name, err))
			continue
		}
		durs[p] = append(durs[p], time.Since(t0).Seconds())
		scopes[p][b.Digest.String()] = b.Size
	}
	st := settledStats(ctx, env.mar)
	var out []phaseResult
	for p, ph := range phases {
		res := RunResult{Clients: len(durs[p]), PullS: durs[p], Pull: Summarize(durs[p])}
		var ttfb []time.Duration
		var t Tally
		for _, n := range nodes[p] {
			r := n.result()
			ttfb = append(ttfb, r.TTFB...)
			t.add(r)
		}
		res.setTally(t)
		for _, d := range durs[p] {
			res.WallS += d
		}
		res.TTFB = Summarize(seconds(ttfb))
		res.Upstream = upstreamStats(st, scopes[p])
		if res.FailedPulls = len(fails[p]); res.FailedPulls > 0 {
			res.FirstFailure = fails[p][0].Error()
		}
		out = append(out, phaseResult{ph, res})
	}
	return out, nil
}
