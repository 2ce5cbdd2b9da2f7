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
	storm, ok := result(ScenarioStorm, "")
	out := []Check{Check{Name: "cluster storm: one upstream GET per blob cluster-wide", Want: "exactly 1 successful blob-data GET per blob, every run"}.judge(
		ok, needs(ScenarioStorm, TargetCluster), func() (bool, string) {
			s := storm.Summary
			return s.FetchesPerBlobMin == 1 && s.FetchesPerBlobMax == 1,
				fmt.Sprintf("min %d, max %d fetches per blob over %d runs (%d nodes on %d replicas)", s.FetchesPerBlobMin, s.FetchesPerBlobMax, s.Runs, rep.Options.Nodes, clusterReplicas)
		})}

	own, ownOK := result(ScenarioRelay, phaseOwner)
	non, nonOK := result(ScenarioRelay, phaseNonOwner)
	out = append(out, Check{Name: "cluster relay: cold TTFB through a non-owner", Want: fmt.Sprintf("≤ owner's + %.0f ms (p50, p90)", relaySlack*1000)}.judge(
		ownOK && nonOK, needs(ScenarioRelay, TargetCluster), func() (bool, string) {
			o, n := own.Summary, non.Summary
			return n.TTFBP50 <= o.TTFBP50+relaySlack && n.TTFBP90 <= o.TTFBP90+relaySlack,
				fmt.Sprintf("p50 %.1f vs %.1f ms (%+.1f), p90 %.1f vs %.1f ms (%+.1f); medians of %d runs",
					n.TTFBP50*1000, o.TTFBP50*1000, (n.TTFBP50-o.TTFBP50)*1000, n.TTFBP90*1000, o.TTFBP90*1000, (n.TTFBP90-o.TTFBP90)*1000, n.Runs)
		}))

	warm, warmOK := result(ScenarioWarm, "")
	single, singleOK := rep.Result(ScenarioWarm, "", TargetAirlock)
	out = append(out, Check{Name: "cluster warm: through the spool vs one replica", Want: fmt.Sprintf("≥ %.1f× airlock's MB/s", clusterWarmVsSingle)}.judge(
		warmOK && singleOK && single.Summary.MBps > 0, fmt.Sprintf("needs scenario %s on %s and %s", ScenarioWarm, TargetCluster, TargetAirlock), func() (bool, string) {
			r := warm.Summary.MBps / single.Summary.MBps
			return r >= clusterWarmVsSingle, fmt.Sprintf("%.1f MB/s vs %.1f MB/s = %.2f×", warm.Summary.MBps, single.Summary.MBps, r)
		}))
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
			c.Got = needs(ScenarioFailover, TargetCluster)
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
