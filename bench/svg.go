package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// targetColor is each target's colour in every chart.
func targetColor(t string) string {
	switch t {
	case TargetAirlock:
		return "#2563eb"
	case TargetCluster:
		return "#0891b2"
	case TargetDistribution:
		return "#dc2626"
	case TargetDirect:
		return "#6b7280"
	case TargetBare:
		return "#16a34a"
	}
	return "#9333ea"
}

// series is one target's sample in a chart.
type series struct {
	name   string
	values []float64
	color  string // "" = targetColor(name)
}

// colorOf is the series' colour.
func (s series) colorOf() string {
	if s.color != "" {
		return s.color
	}
	return targetColor(s.name)
}

// niceTicks returns round tick values from 0 to at least hi.
func niceTicks(hi float64) []float64 {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		return []float64{0, 1}
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := 0.0; ; v += step {
		out = append(out, v)
		if v >= hi {
			break
		}
	}
	return out
}

func fmtTick(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

const (
	svgWidth  = 860
	svgLeft   = 110
	svgRight  = 210
	svgTop    = 30
	svgRow    = 34
	svgBottom = 34
)

// axis draws vertical grid lines and labels for ticks.
func axis(b *strings.Builder, ticks []float64, x func(float64) float64, top, bottom float64, unit string) {
	for _, t := range ticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e7eb"/>`, x(t), top, x(t), bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#374151">%s</text>`, x(t), bottom+14, fmtTick(t))
	}
	fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#374151">%s</text>`, svgWidth-svgRight, bottom+28, html.EscapeString(unit))
}

// chartFrame starts a chart of rows horizontal rows whose scale reaches hi:
// the svg element, the title and the axis. x maps a value to its abscissa.
func chartFrame(title, unit string, hi float64, rows int) (b *strings.Builder, x func(float64) float64, top, bottom float64) {
	ticks := niceTicks(hi)
	top = float64(svgTop)
	bottom = top + float64(svgRow*rows)
	height := bottom + svgBottom
	plotW := float64(svgWidth - svgLeft - svgRight)
	x = func(v float64) float64 { return svgLeft + v/ticks[len(ticks)-1]*plotW }
	b = &strings.Builder{}
	fmt.Fprintf(b, `<svg viewBox="0 0 %d %.0f" width="%d" height="%.0f" role="img" aria-label="%s">`, svgWidth, height, svgWidth, height, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="0" y="16" font-size="13" font-weight="bold">%s</text>`, html.EscapeString(title))
	axis(b, ticks, x, top, bottom, unit)
	return b, x, top, bottom
}

// boxPlotSVG draws one horizontal box plot per series: whiskers min to max,
// box p25 to p75, a bar at the median and a dot at p95.
func boxPlotSVG(title, unit string, ss []series) string {
	hi := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			hi = max(hi, v)
		}
	}
	b, x, top, _ := chartFrame(title, unit, hi, len(ss))
	for i, s := range ss {
		y := top + float64(i*svgRow) + svgRow/2
		c := s.colorOf()
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="12" text-anchor="end" dominant-baseline="middle">%s</text>`, svgLeft-8, y, html.EscapeString(s.name))
		if len(s.values) == 0 {
			fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" dominant-baseline="middle" fill="#6b7280">no data</text>`, svgLeft+4, y)
			continue
		}
		d := Summarize(s.values)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, x(d.Min), y, x(d.Max), y, c)
		for _, v := range []float64{d.Min, d.Max} {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, x(v), y-6, x(v), y+6, c)
		}
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="16" fill="%s" fill-opacity="0.25" stroke="%s"/>`, x(d.P25), y-8, math.Max(1, x(d.P75)-x(d.P25)), c, c)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`, x(d.P50), y-8, x(d.P50), y+8, c)
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x(d.P95), y, c)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" dominant-baseline="middle" fill="#374151">p50 %s · p95 %s · n=%d</text>`,
			svgWidth-svgRight+8, y, fmtTick(d.P50), fmtTick(d.P95), d.N)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// barSVG draws one horizontal bar per series (its first value), with a
// dashed reference line at ref (skipped when 0).
func barSVG(title, unit string, ss []series, ref float64, format func(float64) string) string {
	hi := ref
	for _, s := range ss {
		if len(s.values) > 0 {
			hi = max(hi, s.values[0])
		}
	}
	b, x, top, bottom := chartFrame(title, unit, hi, len(ss))
	for i, s := range ss {
		y := top + float64(i*svgRow) + svgRow/2
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="12" text-anchor="end" dominant-baseline="middle">%s</text>`, svgLeft-8, y, html.EscapeString(s.name))
		if len(s.values) == 0 {
			continue
		}
		v := s.values[0]
		fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="18" fill="%s"/>`, svgLeft, y-9, math.Max(1, x(v)-svgLeft), s.colorOf())
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" dominant-baseline="middle" fill="#374151">%s</text>`, svgWidth-svgRight+8, y, html.EscapeString(format(v)))
	}
	if ref > 0 {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#111827" stroke-dasharray="4 3"/>`, x(ref), top-4, x(ref), bottom)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
