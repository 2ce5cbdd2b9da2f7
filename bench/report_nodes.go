package bench

import (
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// medianRun returns the measured run whose median node time is the
// median of the runs (the lower one for an even count); nil if none.
func medianRun(r Result) *RunResult {
	var ok []int
	for i, run := range r.Runs {
		if run.Error == "" {
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	sort.SliceStable(ok, func(a, b int) bool { return r.Runs[ok[a]].Pull.P50 < r.Runs[ok[b]].Pull.P50 })
	return &r.Runs[ok[(len(ok)-1)/2]]
}

// kindsLine formats error counts by kind, most frequent first.
func kindsLine(m map[string]int64) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return int(m[b] - m[a])
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// slowest returns the slowest node of a run, if it has per-node records.
func slowest(run *RunResult) (NodeRecord, bool) {
	if run == nil || len(run.PerNode) == 0 {
		return NodeRecord{}, false
	}
	return slices.MaxFunc(run.PerNode, func(a, b NodeRecord) int { return cmpFloat(a.PullS, b.PullS) }), true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeDetails writes, for the runs against registries, the median run's
// slowest node, per-image times, errors by kind and load machines; for
// other results only the errors by kind, when there were any.
func (rep *Report) writeDetails(w io.Writer) {
	for _, r := range rep.Results {
		run := medianRun(r)
		if run == nil {
			continue
		}
		if r.Scenario != ScenarioPull {
			if len(run.ErrorKinds) > 0 || len(run.FailedKinds) > 0 {
				fmt.Fprintf(w, "\n%s on %s, median run: errors %s; failed nodes %s\n", r.Key(), r.Target, orNone(kindsLine(run.ErrorKinds)), orNone(kindsLine(run.FailedKinds)))
			}
			continue
		}
		fmt.Fprintf(w, "\n%s on %s, run %d of %d (the median run):\n", r.Key(), r.Target, run.Run, len(r.Runs))
		if s, ok := slowest(run); ok {
			fmt.Fprintf(w, "  time to pull the set, per node: p50 %.3f s, p90 %.3f s, p99 %.3f s; slowest node #%d (agent %d) %.3f s, started at %.3f s\n",
				run.Pull.P50, Percentile(run.PullS, 90), run.Pull.P99, s.Node, s.Agent, s.PullS, s.StartS)
		}
		failed := fmt.Sprint(run.FailedPulls)
		if len(run.FailedKinds) > 0 {
			failed += " (" + kindsLine(run.FailedKinds) + ")"
		}
		fmt.Fprintf(w, "  received %s in %d requests; errors seen: %s; failed nodes: %s\n", humanBytes(run.Bytes), run.Requests,
			orNone(kindsLine(run.ErrorKinds)), failed)
		if u := run.Upstream; u.Source != "" {
			fmt.Fprintf(w, "  upstream (%s): %d requests, %s, %d blob GETs for %d blobs (%.2f per blob)", u.Source, u.Requests, humanBytes(u.Bytes),
				u.BlobFetches, u.Blobs, float64(u.BlobFetches)/math.Max(1, float64(u.Blobs)))
			if u.CacheHits+u.CacheMisses+u.Coalesced > 0 {
				fmt.Fprintf(w, "; cache hits %d, misses %d, coalesced %d", u.CacheHits, u.CacheMisses, u.Coalesced)
			}
			fmt.Fprintln(w)
		}
		if len(run.Images) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  image\tp50 s\tp95 s\tmax s\tfailed")
			for _, im := range run.Images {
				fmt.Fprintf(tw, "  %s\t%.3f\t%.3f\t%.3f\t%d\n", im.Image, im.Pull.P50, im.Pull.P95, im.Pull.Max, im.Failed)
			}
			_ = tw.Flush()
		}
		for _, a := range run.Agents {
			fmt.Fprintf(w, "  agent %d (%s): %d nodes, %s, %d failed; clock %+.2f ms (±%.2f), started %.2f ms after the barrier\n",
				a.Agent, a.Name, a.Nodes, humanBytes(a.Bytes), a.FailedPulls, a.ClockOffsetS*1000, a.ClockRTTS*500, a.StartLateS*1000)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// humanBytes formats a byte count in MiB.
func humanBytes(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/mib) }

// point is one vertex of a line chart.
type point struct{ x, y float64 }

// line is one series of a line chart.
type line struct {
	name   string
	color  string
	pts    []point
	dashed bool
}

// cdfLine is the empirical CDF of xs as steps.
func cdfLine(name, color string, xs []float64) line {
	s := slices.Clone(xs)
	slices.Sort(s)
	l := line{name: name, color: color}
	for i, v := range s {
		l.pts = append(l.pts, point{v, float64(i) / float64(len(s))}, point{v, float64(i+1) / float64(len(s))})
	}
	return l
}

// arrivalLines are the nodes started and done over time in one run.
func arrivalLines(name, color string, nodes []NodeRecord) (started, done line) {
	var st, en []float64
	for _, n := range nodes {
		st = append(st, n.StartS)
		en = append(en, n.StartS+n.PullS)
	}
	cum := func(ts []float64) []point {
		slices.Sort(ts)
		pts := []point{{0, 0}}
		for i, t := range ts {
			pts = append(pts, point{t, float64(i)}, point{t, float64(i + 1)})
		}
		return pts
	}
	return line{name: name + " started", color: color, pts: cum(st), dashed: true}, line{name: name + " done", color: color, pts: cum(en)}
}

// Line chart geometry.
const (
	lineH      = 240
	lineLegend = 18
)

// lineSVG draws lines on x (0..max) and y (0..yMax) axes, a legend below.
func lineSVG(title, xUnit, yUnit string, yMax float64, lines []line) string {
	xMax := 0.0
	for _, l := range lines {
		for _, p := range l.pts {
			xMax = max(xMax, p.x)
		}
	}
	xt, yt := niceTicks(xMax), niceTicks(yMax)
	top, bottom := float64(svgTop+16), float64(svgTop+16+lineH)
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(v float64) float64 { return svgLeft + v/xt[len(xt)-1]*plotW }
	y := func(v float64) float64 { return bottom - v/yt[len(yt)-1]*(bottom-top) }
	height := bottom + svgBottom + float64(len(lines)*lineLegend)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %.0f" width="%d" height="%.0f" role="img" aria-label="%s">`, svgWidth, height, svgWidth, height, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="0" y="16" font-size="13" font-weight="bold">%s</text>`, html.EscapeString(title))
	axis(&b, xt, x, top, bottom, xUnit)
	for _, t := range yt {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e7eb"/>`, svgLeft, y(t), x(xt[len(xt)-1]), y(t))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" dominant-baseline="middle" fill="#374151">%s</text>`, svgLeft-6, y(t), fmtTick(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="start" fill="#374151">%s</text>`, svgLeft, top-8, html.EscapeString(yUnit))
	for i, l := range lines {
		c := l.color
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="5 3"`
		}
		var pts []string
		for _, p := range l.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.x), y(p.y)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`, c, dash, strings.Join(pts, " "))
		ly := bottom + svgBottom + float64(i*lineLegend) + 6
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2"%s/>`, svgLeft, ly, svgLeft+20, ly, c, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" dominant-baseline="middle" fill="#374151">%s</text>`, svgLeft+26, ly, html.EscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// colors gives every target of a report its colour: the bench's own
// targets theirs, registries one of a palette in order.
func colors(rs []Result) map[string]string {
	palette := []string{"#9333ea", "#0891b2", "#ea580c", "#65a30d", "#db2777", "#854d0e"}
	own := append(Targets(), TargetBare)
	out := map[string]string{}
	for _, r := range rs {
		if _, ok := out[r.Target]; ok {
			continue
		}
		if slices.Contains(own, r.Target) {
			out[r.Target] = targetColor(r.Target)
			continue
		}
		out[r.Target] = palette[len(out)%len(palette)]
	}
	return out
}
