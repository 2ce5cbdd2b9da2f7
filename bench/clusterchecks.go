package bench

import (
	"fmt"
	"slices"
)

// Targets issue 13 sets for airlock-cluster.
const (
	relaySlack          = 0.005 // seconds a non-owner may add to the owner's time to first byte
	clusterWarmVsSingle = 0.9   // warm through the spool vs one filesystem replica
	failoverSlack       = 2.0   // seconds over the lease for a fill to resume
	failoverBytesRatio  = 2.0   // upstream bytes of the big blob vs its size
)

// clusterChecks judges airlock-cluster, when it was measured.
func clusterChecks(rep *Report) []Check {
	if !slices.Contains(rep.Options.Targets, TargetCluster) {
		return nil
	}
	result := func(sc, phase string) (Result, bool) {
		r, ok := rep.Result(sc, phase, TargetCluster)
		return r, ok && r.Summary.Runs > 0
	}
	var out []Check

	c := Check{Name: "cluster storm: one upstream GET per blob cluster-wide", Want: "exactly 1 successful blob-data GET per blob, every run"}
	if r, ok := result(ScenarioStorm, ""); ok {
		s := r.Summary
		c.Judged, c.Pass = true, s.FetchesPerBlobMin == 1 && s.FetchesPerBlobMax == 1
		c.Got = fmt.Sprintf("min %d, max %d fetches per blob over %d runs (%d nodes on %d replicas)", s.FetchesPerBlobMin, s.FetchesPerBlobMax, s.Runs, rep.Options.Nodes, clusterReplicas)
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioStorm, TargetCluster)
	}
	out = append(out, c)

	c = Check{Name: "cluster relay: cold TTFB through a non-owner", Want: fmt.Sprintf("≤ owner's + %.0f ms (p50, p90)", relaySlack*1000)}
	own, ok1 := result(ScenarioRelay, phaseOwner)
	non, ok2 := result(ScenarioRelay, phaseNonOwner)
	if ok1 && ok2 {
		o, n := own.Summary, non.Summary
		c.Judged, c.Pass = true, n.TTFBP50 <= o.TTFBP50+relaySlack && n.TTFBP90 <= o.TTFBP90+relaySlack
		c.Got = fmt.Sprintf("p50 %.1f vs %.1f ms (%+.1f), p90 %.1f vs %.1f ms (%+.1f); medians of %d runs",
			n.TTFBP50*1000, o.TTFBP50*1000, (n.TTFBP50-o.TTFBP50)*1000, n.TTFBP90*1000, o.TTFBP90*1000, (n.TTFBP90-o.TTFBP90)*1000, n.Runs)
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioRelay, TargetCluster)
	}
	out = append(out, c)

	c = Check{Name: "cluster warm: through the spool vs one replica", Want: fmt.Sprintf("≥ %.1f× airlock's MB/s", clusterWarmVsSingle)}
	warm, ok1 := result(ScenarioWarm, "")
	single, ok2 := rep.Result(ScenarioWarm, "", TargetAirlock)
	if ok1 && ok2 && single.Summary.MBps > 0 {
		r := warm.Summary.MBps / single.Summary.MBps
		c.Judged, c.Pass = true, r >= clusterWarmVsSingle
		c.Got = fmt.Sprintf("%.1f MB/s vs %.1f MB/s = %.2f×", warm.Summary.MBps, single.Summary.MBps, r)
	} else {
		c.Got = fmt.Sprintf("needs scenario %s on %s and %s", ScenarioWarm, TargetCluster, TargetAirlock)
	}
	out = append(out, c)
	return append(out, failoverChecks(result)...)
}

// failoverChecks judges the failover scenario over its runs (worst run).
func failoverChecks(result func(sc, phase string) (Result, bool)) []Check {
	r, ok := result(ScenarioFailover, "")
	corrupt := Check{Name: "failover: corrupt and failed after one retry", Want: "0 corrupt, 0 failed"}
	recovery := Check{Name: "failover: recovery from the owner's kill", Want: fmt.Sprintf("≤ lease + %.0f s", failoverSlack)}
	bytes := Check{Name: "failover: upstream bytes of the big blob", Want: fmt.Sprintf("≤ %.0f× its size", failoverBytesRatio)}
	if !ok {
		for _, c := range []*Check{&corrupt, &recovery, &bytes} {
			c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioFailover, TargetCluster)
		}
		return []Check{corrupt, recovery, bytes}
	}
	s := r.Summary
	var f FailoverRun
	var orphansFailed, moved, runs int
	var takeovers float64
	for _, run := range r.Runs {
		if run.Error != "" || run.Failover == nil {
			continue
		}
		g := run.Failover
		runs++
		f.LeaseS = g.LeaseS
		f.RecoveryS, f.ResumeS, f.StallS = max(f.RecoveryS, g.RecoveryS), max(f.ResumeS, g.ResumeS), max(f.StallS, g.StallS)
		f.BytesRatio = max(f.BytesRatio, g.BytesRatio)
		orphansFailed += g.OrphansFailed
		moved += g.MovedNodes
		takeovers += g.Takeovers
	}
	corrupt.Judged, corrupt.Pass = true, s.Corrupt == 0 && s.FailedPulls == 0
	corrupt.Got = fmt.Sprintf("%d corrupt, %d failed (%d of them nodes of the killed replica) over %d runs; %d nodes moved to another replica, %d client retries",
		s.Corrupt, s.FailedPulls, orphansFailed, s.Runs, moved, s.Retries)
	if runs > 0 {
		recovery.Judged, recovery.Pass = true, f.RecoveryS <= f.LeaseS+failoverSlack
		recovery.Got = fmt.Sprintf("%.2f s, the longest wait after the kill for a byte of a body under way on a surviving replica (lease %.0f s); big blob on every node %.2f s;"+
			" longest silence of a surviving replica's GET after the kill %.2f s; %.0f takeovers over %d runs (worst run)",
			f.RecoveryS, f.LeaseS, f.ResumeS, f.StallS, takeovers, runs)
		bytes.Judged, bytes.Pass = true, f.BytesRatio <= failoverBytesRatio
		bytes.Got = fmt.Sprintf("%.2f× (worst run)", f.BytesRatio)
	} else {
		recovery.Got, bytes.Got = "no failover figures", "no failover figures"
	}
	return []Check{corrupt, recovery, bytes}
}
