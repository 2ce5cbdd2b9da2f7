package bench

import "fmt"

// Targets the issue sets for airlock.
const (
	stormSlowestRatio  = 1.2      // slowest storm node vs cold-one
	warmVsBare         = 0.9      // warm throughput vs bare ServeContent
	ttfbSlack          = 0.010    // seconds over the upstream's TTFB
	rangesBytesRatio   = 1.05     // ranges cold upstream bytes vs blob size
	stormRSSAboveIdle  = 64 << 20 // bytes
	mib                = 1 << 20
	checkNeedsScenario = "needs scenario %s on %s"
)

// checks judges the airlock targets on the report's summaries.
func checks(rep *Report) []Check {
	sum := func(sc, phase, tg string) (Summary, bool) {
		r, ok := rep.Result(sc, phase, tg)
		return r.Summary, ok && r.Summary.Runs > 0
	}
	var out []Check
	add := func(c Check) { out = append(out, c) }

	storm, stormOK := sum(ScenarioStorm, "", TargetAirlock)
	add(Check{Name: "storm: one upstream GET per blob", Want: "exactly 1 successful blob-data GET per blob, every run"}.judge(
		stormOK, needs(ScenarioStorm, TargetAirlock), func() (bool, string) {
			return storm.FetchesPerBlobMin == 1 && storm.FetchesPerBlobMax == 1,
				fmt.Sprintf("min %d, max %d fetches per blob over %d runs (%d nodes)", storm.FetchesPerBlobMin, storm.FetchesPerBlobMax, storm.Runs, rep.Options.Nodes)
		}))

	cold, coldOK := sum(ScenarioColdOne, "", TargetAirlock)
	add(Check{Name: "storm: slowest node vs cold-one", Want: fmt.Sprintf("≤ %.1f×", stormSlowestRatio)}.judge(
		stormOK && coldOK && cold.PullMax > 0, fmt.Sprintf("needs scenarios %s and %s on %s", ScenarioStorm, ScenarioColdOne, TargetAirlock), func() (bool, string) {
			r := storm.PullMax / cold.PullMax
			got := fmt.Sprintf("%.3f s vs %.3f s = %.2f×", storm.PullMax, cold.PullMax, r)
			if w, ok := sum(ScenarioStorm, "warm", TargetAirlock); ok && w.PullMax > 0 {
				got += fmt.Sprintf("; vs the same storm on a warm cache (%.3f s): %.2f×", w.PullMax, storm.PullMax/w.PullMax)
			}
			ds, ok3 := sum(ScenarioStorm, "", TargetDirect)
			dc, ok4 := sum(ScenarioColdOne, "", TargetDirect)
			if ok3 && ok4 && dc.PullMax > 0 {
				got += fmt.Sprintf("; direct, no cache: %.2f×", ds.PullMax/dc.PullMax)
			}
			return r <= stormSlowestRatio, got
		}))

	warm, warmOK := sum(ScenarioWarm, "", TargetAirlock)
	bare, bareOK := sum(ScenarioWarm, "", TargetBare)
	add(Check{Name: "warm: throughput vs bare ServeContent", Want: fmt.Sprintf("≥ %.1f×", warmVsBare)}.judge(
		warmOK && bareOK && bare.MBps > 0, needs(ScenarioWarm, TargetAirlock), func() (bool, string) {
			r := warm.MBps / bare.MBps
			return r >= warmVsBare, fmt.Sprintf("%.1f MB/s vs %.1f MB/s = %.2f×", warm.MBps, bare.MBps, r)
		}))

	dist, distOK := sum(ScenarioWarm, "", TargetDistribution)
	add(Check{Name: "warm: ahead of distribution", Want: "airlock MB/s > distribution MB/s"}.judge(
		warmOK && distOK && dist.MBps > 0, fmt.Sprintf("needs scenario %s on %s and %s", ScenarioWarm, TargetAirlock, TargetDistribution), func() (bool, string) {
			return warm.MBps > dist.MBps, fmt.Sprintf("%.1f MB/s vs %.1f MB/s = %.2f×", warm.MBps, dist.MBps, warm.MBps/dist.MBps)
		}))

	slow, slowOK := sum(ScenarioUpstreamSlow, "", TargetAirlock)
	direct, directOK := sum(ScenarioUpstreamSlow, "", TargetDirect)
	add(Check{Name: "upstream-slow: time to first byte on a miss", Want: fmt.Sprintf("≤ upstream's + %.0f ms", ttfbSlack*1000)}.judge(
		slowOK && directOK, fmt.Sprintf("needs scenario %s on %s and %s", ScenarioUpstreamSlow, TargetAirlock, TargetDirect), func() (bool, string) {
			return slow.TTFBP50 <= direct.TTFBP50+ttfbSlack,
				fmt.Sprintf("p50 %.1f ms vs upstream %.1f ms (+%.1f ms)", slow.TTFBP50*1000, direct.TTFBP50*1000, (slow.TTFBP50-direct.TTFBP50)*1000)
		}))

	ranges, rangesOK := sum(ScenarioRanges, "cold", TargetAirlock)
	add(Check{Name: "ranges cold: upstream bytes vs blob size", Want: fmt.Sprintf("≤ %.2f×", rangesBytesRatio)}.judge(
		rangesOK, needs(ScenarioRanges, TargetAirlock), func() (bool, string) {
			return ranges.BytesRatio <= rangesBytesRatio,
				fmt.Sprintf("%.3f× (%.1f MiB of %.1f MiB)", ranges.BytesRatio, ranges.UpstreamBytes/mib, float64(rep.Catalog.LargeSize)/mib)
		}))

	add(Check{Name: "storm: peak RSS above idle", Want: fmt.Sprintf("≤ %d MiB", stormRSSAboveIdle/mib)}.judge(
		stormOK && storm.PeakRSS > 0, needs(ScenarioStorm, TargetAirlock), func() (bool, string) {
			got := fmt.Sprintf("%.1f MiB (peak %.1f MiB)", storm.PeakAboveIdle/mib, storm.PeakRSS/mib)
			if rangesOK && ranges.PeakRSS > 0 {
				got += fmt.Sprintf("; ranges cold over a %.0f MiB blob: %.1f MiB", float64(rep.Catalog.LargeSize)/mib, ranges.PeakAboveIdle/mib)
			}
			return storm.PeakAboveIdle <= stormRSSAboveIdle, got
		}))

	flaky, flakyOK := sum(ScenarioFlaky, "", TargetAirlock)
	add(Check{Name: "flaky: zero corrupt and zero failed pulls", Want: "0 corrupt, 0 failed"}.judge(
		flakyOK, needs(ScenarioFlaky, TargetAirlock), func() (bool, string) {
			return flaky.Corrupt == 0 && flaky.FailedPulls == 0,
				fmt.Sprintf("%d corrupt, %d failed over %d runs (%d client retries)", flaky.Corrupt, flaky.FailedPulls, flaky.Runs, flaky.Retries)
		}))
	return append(out, clusterChecks(rep)...)
}

// judge gives the check its verdict, from the pass and got verdict says,
// when its measurements are there (ok); else it is not judged and says
// what it needs.
func (c Check) judge(ok bool, needs string, verdict func() (pass bool, got string)) Check {
	if !ok {
		c.Got = needs
		return c
	}
	c.Judged = true
	c.Pass, c.Got = verdict()
	return c
}

// needs says a check needs scenario sc measured on target tg.
func needs(sc, tg string) string { return fmt.Sprintf(checkNeedsScenario, sc, tg) }
