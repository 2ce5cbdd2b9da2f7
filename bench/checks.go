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

	c := Check{Name: "storm: one upstream GET per blob", Want: "exactly 1 successful blob-data GET per blob, every run"}
	if s, ok := sum(ScenarioStorm, "", TargetAirlock); ok {
		c.Judged = true
		c.Pass = s.FetchesPerBlobMin == 1 && s.FetchesPerBlobMax == 1
		c.Got = fmt.Sprintf("min %d, max %d fetches per blob over %d runs (%d nodes)", s.FetchesPerBlobMin, s.FetchesPerBlobMax, s.Runs, rep.Options.Nodes)
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioStorm, TargetAirlock)
	}
	add(c)

	c = Check{Name: "storm: slowest node vs cold-one", Want: fmt.Sprintf("≤ %.1f×", stormSlowestRatio)}
	storm, ok1 := sum(ScenarioStorm, "", TargetAirlock)
	cold, ok2 := sum(ScenarioColdOne, "", TargetAirlock)
	if ok1 && ok2 && cold.PullMax > 0 {
		r := storm.PullMax / cold.PullMax
		c.Judged, c.Pass = true, r <= stormSlowestRatio
		c.Got = fmt.Sprintf("%.3f s vs %.3f s = %.2f×", storm.PullMax, cold.PullMax, r)
		if w, ok := sum(ScenarioStorm, "warm", TargetAirlock); ok && w.PullMax > 0 {
			c.Got += fmt.Sprintf("; vs the same storm on a warm cache (%.3f s): %.2f×", w.PullMax, storm.PullMax/w.PullMax)
		}
		ds, ok3 := sum(ScenarioStorm, "", TargetDirect)
		dc, ok4 := sum(ScenarioColdOne, "", TargetDirect)
		if ok3 && ok4 && dc.PullMax > 0 {
			c.Got += fmt.Sprintf("; direct, no cache: %.2f×", ds.PullMax/dc.PullMax)
		}
	} else {
		c.Got = fmt.Sprintf("needs scenarios %s and %s on %s", ScenarioStorm, ScenarioColdOne, TargetAirlock)
	}
	add(c)

	c = Check{Name: "warm: throughput vs bare ServeContent", Want: fmt.Sprintf("≥ %.1f×", warmVsBare)}
	warm, ok1 := sum(ScenarioWarm, "", TargetAirlock)
	bare, ok2 := sum(ScenarioWarm, "", TargetBare)
	if ok1 && ok2 && bare.MBps > 0 {
		r := warm.MBps / bare.MBps
		c.Judged, c.Pass = true, r >= warmVsBare
		c.Got = fmt.Sprintf("%.1f MB/s vs %.1f MB/s = %.2f×", warm.MBps, bare.MBps, r)
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioWarm, TargetAirlock)
	}
	add(c)

	c = Check{Name: "warm: ahead of distribution", Want: "airlock MB/s > distribution MB/s"}
	dist, ok2 := sum(ScenarioWarm, "", TargetDistribution)
	if ok1 && ok2 && dist.MBps > 0 {
		c.Judged, c.Pass = true, warm.MBps > dist.MBps
		c.Got = fmt.Sprintf("%.1f MB/s vs %.1f MB/s = %.2f×", warm.MBps, dist.MBps, warm.MBps/dist.MBps)
	} else {
		c.Got = fmt.Sprintf("needs scenario %s on %s and %s", ScenarioWarm, TargetAirlock, TargetDistribution)
	}
	add(c)

	c = Check{Name: "upstream-slow: time to first byte on a miss", Want: fmt.Sprintf("≤ upstream's + %.0f ms", ttfbSlack*1000)}
	slow, ok1 := sum(ScenarioUpstreamSlow, "", TargetAirlock)
	direct, ok2 := sum(ScenarioUpstreamSlow, "", TargetDirect)
	if ok1 && ok2 {
		c.Judged, c.Pass = true, slow.TTFBP50 <= direct.TTFBP50+ttfbSlack
		c.Got = fmt.Sprintf("p50 %.1f ms vs upstream %.1f ms (+%.1f ms)", slow.TTFBP50*1000, direct.TTFBP50*1000, (slow.TTFBP50-direct.TTFBP50)*1000)
	} else {
		c.Got = fmt.Sprintf("needs scenario %s on %s and %s", ScenarioUpstreamSlow, TargetAirlock, TargetDirect)
	}
	add(c)

	c = Check{Name: "ranges cold: upstream bytes vs blob size", Want: fmt.Sprintf("≤ %.2f×", rangesBytesRatio)}
	if s, ok := sum(ScenarioRanges, "cold", TargetAirlock); ok {
		c.Judged, c.Pass = true, s.BytesRatio <= rangesBytesRatio
		c.Got = fmt.Sprintf("%.3f× (%.1f MiB of %.1f MiB)", s.BytesRatio, s.UpstreamBytes/mib, float64(rep.Catalog.LargeSize)/mib)
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioRanges, TargetAirlock)
	}
	add(c)

	c = Check{Name: "storm: peak RSS above idle", Want: fmt.Sprintf("≤ %d MiB", stormRSSAboveIdle/mib)}
	if s, ok := sum(ScenarioStorm, "", TargetAirlock); ok && s.PeakRSS > 0 {
		c.Judged, c.Pass = true, s.PeakAboveIdle <= stormRSSAboveIdle
		c.Got = fmt.Sprintf("%.1f MiB (peak %.1f MiB)", s.PeakAboveIdle/mib, s.PeakRSS/mib)
		if r, ok := sum(ScenarioRanges, "cold", TargetAirlock); ok && r.PeakRSS > 0 {
			c.Got += fmt.Sprintf("; ranges cold over a %.0f MiB blob: %.1f MiB", float64(rep.Catalog.LargeSize)/mib, r.PeakAboveIdle/mib)
		}
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioStorm, TargetAirlock)
	}
	add(c)

	c = Check{Name: "flaky: zero corrupt and zero failed pulls", Want: "0 corrupt, 0 failed"}
	if s, ok := sum(ScenarioFlaky, "", TargetAirlock); ok {
		c.Judged, c.Pass = true, s.Corrupt == 0 && s.FailedPulls == 0
		c.Got = fmt.Sprintf("%d corrupt, %d failed over %d runs (%d client retries)", s.Corrupt, s.FailedPulls, s.Runs, s.Retries)
	} else {
		c.Got = fmt.Sprintf(checkNeedsScenario, ScenarioFlaky, TargetAirlock)
	}
	add(c)
	return append(out, clusterChecks(rep)...)
}
