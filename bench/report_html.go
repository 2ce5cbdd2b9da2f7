package bench

import (
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
)

// htmlPage is report.html: self-contained (inline CSS and SVG, no scripts,
// no external URL), so it opens in a browser with no network.
var htmlPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>airlock bench {{.Started}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#111827;max-width:1100px}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #e5e7eb;padding:3px 7px;text-align:right}
th{background:#f3f4f6} td.l,th.l{text-align:left}
.pass{color:#15803d;font-weight:bold}.fail{color:#b91c1c;font-weight:bold}.na{color:#6b7280}
code{background:#f3f4f6;padding:1px 4px}
section{margin:2em 0} .charts svg{display:block;margin:1em 0}
</style></head><body>
<h1>airlock bench</h1>
<p>Started {{.Started}}, {{.Duration}}. Command: <code>{{.Command}}</code></p>
<p>Machine: {{.Machine}}</p>
<p>Catalog: {{.Catalog}}</p>
{{if .Registries}}<h2>Registries</h2><ul>{{range .Registries}}<li><code>{{.URL}}</code> as <b>{{.Name}}</b>, {{.Credentials}}; upstream counted by {{if .Upstream}}<code>{{.Upstream}}</code>{{else}}nothing{{end}}</li>{{end}}</ul>{{end}}
{{if .Checks}}<h2>airlock targets</h2>
<table><tr><th class="l">check</th><th class="l">want</th><th class="l">got</th><th>verdict</th></tr>
{{range .Checks}}<tr><td class="l">{{.Name}}</td><td class="l">{{.Want}}</td><td class="l">{{.Got}}</td><td class="{{.Class}}">{{.Verdict}}</td></tr>
{{end}}</table>{{end}}
<h2>Summary</h2>
<p>Medians of {{.Runs}} runs per target, targets interleaved within each run; errors, failed and corrupt are summed over runs.
"fetch/blob" counts successful upstream blob GETs per blob (min–max over runs); "up bytes" is upstream blob bytes over the size of the blobs pulled.</p>
<table><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if lt $i 2}} class="l"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>
{{range .Sections}}<section><h2>{{.Title}}</h2><p>{{.Note}}</p><div class="charts">{{range .Charts}}{{.}}{{end}}</div></section>
{{end}}
{{if .Details}}<h2>Details</h2><pre>{{.Details}}</pre>{{end}}
{{if .Errors}}<h2>Runs that could not be measured</h2><ul>{{range .Errors}}<li><pre>{{.}}</pre></li>{{end}}</ul>{{end}}
</body></html>
`))

type htmlCheck struct {
	Check
	Class, Verdict string
}

type htmlSection struct {
	Title, Note string
	Charts      []template.HTML
}

var scenarioNotes = map[string]string{
	ScenarioColdOne:      "One node pulls the bootstrap set (linux/amd64) through an empty cache.",
	ScenarioWarm:         "One node pulls the bootstrap set from a full cache; bare is http.ServeContent of the same files.",
	ScenarioStorm:        "Every node starts pulling the whole set at the same instant through an empty cache (storm/warm: the same storm again once the cache is full, the fastest this machine runs it).",
	ScenarioRanges:       "Concurrent Range GETs over one large blob (containerd 2.x multipart fetch).",
	ScenarioFlaky:        "Storm while the emulator cuts every body of 5% of the blobs half-way and answers 2% of requests 503.",
	ScenarioUpstreamSlow: "One node, empty cache, upstream capped at 50 MB/s with 50 ms before every response header.",
	ScenarioRelay:        "airlock-cluster: cold blob GETs one at a time, every other one through the replica owning its digest (owner), the others through a non-owner relaying the owner's fill (non-owner).",
	ScenarioFailover:     "airlock-cluster: a storm in which every node first pulls a big blob paced upstream; once a node has a quarter of it, the replica owning it is killed (SIGKILL); its nodes retry once on the next replica. Per-run figures: results.json (failover) and the terminal table.",
	ScenarioPull:         "A cluster event on a registry the bench did not start: every node pulls the whole image set, arriving as the run's arrival says.",
}

// WriteHTML writes report.html into dir.
func (rep *Report) WriteHTML(dir string) (string, error) {
	data := struct {
		Started, Duration, Command, Machine, Catalog string
		Runs                                         int
		Checks                                       []htmlCheck
		Head                                         []string
		Rows                                         [][]string
		Sections                                     []htmlSection
		Errors                                       []string
		Registries                                   []RegistryInfo
		Details                                      string
	}{
		Started:  rep.Started.Format("2006-01-02 15:04:05 MST"),
		Duration: fmt.Sprintf("%.0f s", rep.DurationS),
		Command:  rep.Command,
		Machine: fmt.Sprintf("%d CPUs %s, %.1f GiB, %s/%s, %s, load %s", rep.Machine.CPUs, rep.Machine.CPUModel,
			float64(rep.Machine.MemBytes)/(1<<30), rep.Machine.OS, rep.Machine.Arch, rep.Machine.Go, rep.Machine.Load),
		Catalog: fmt.Sprintf("%s, scale %s, Kubernetes %s bootstrap set: %d images, %d blobs, %.2f MiB per node",
			rep.Options.Catalog, rep.Options.Scale, rep.Options.Minor, len(rep.Catalog.Images), rep.Catalog.Blobs, float64(rep.Catalog.BlobBytes)/mib),
		Runs:       rep.Options.Runs,
		Head:       []string{"scenario", "target", "runs", "wall s", "p50 s", "p95 s", "p99 s", "max s", "TTFB ms", "MB/s", "up req", "fetch/blob", "up bytes", "errors", "failed", "corrupt", "RSS+ MiB", "CPU s/GiB"},
		Errors:     rep.Errors,
		Registries: rep.Registries,
	}
	var details strings.Builder
	rep.writeDetails(&details)
	data.Details = strings.TrimSpace(details.String())
	for _, c := range rep.Checks {
		data.Checks = append(data.Checks, htmlCheck{Check: c, Class: map[string]string{"PASS": "pass", "FAIL": "fail", "n/a": "na"}[c.verdict()], Verdict: c.verdict()})
	}
	for _, r := range rep.Results {
		data.Rows = append(data.Rows, summaryRow(r))
	}
	data.Sections = rep.sections()
	p := filepath.Join(dir, "report.html")
	f, err := os.Create(p)
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if err := htmlPage.Execute(f, data); err != nil {
		f.Close()
		return "", fmt.Errorf("report: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return p, nil
}

func summaryRow(r Result) []string {
	s := r.Summary
	if s.Runs == 0 {
		return []string{r.Key(), r.Target, fmt.Sprintf("0/%d", len(r.Runs))}
	}
	fetch := s.fetchCell("–")
	rss, cpu := "–", "–"
	if s.PeakRSS > 0 {
		rss, cpu = fmt.Sprintf("%.1f", s.PeakAboveIdle/mib), fmt.Sprintf("%.2f", s.CPUSPerGiB)
	}
	return []string{r.Key(), r.Target, fmt.Sprint(s.Runs), fmt.Sprintf("%.3f", s.WallS), fmt.Sprintf("%.3f", s.PullP50),
		fmt.Sprintf("%.3f", s.PullP95), fmt.Sprintf("%.3f", s.PullP99), fmt.Sprintf("%.3f", s.PullMax), fmt.Sprintf("%.1f", s.TTFBP50*1000),
		fmt.Sprintf("%.1f", s.MBps), fmt.Sprintf("%.0f", s.UpstreamRequests), fetch, fmt.Sprintf("%.2f×", s.BytesRatio),
		fmt.Sprint(s.Errors), fmt.Sprint(s.FailedPulls), fmt.Sprint(s.Corrupt), rss, cpu}
}

// sections builds one section per scenario (and phase) with its charts.
func (rep *Report) sections() []htmlSection {
	var out []htmlSection
	var keys []string
	byKey := map[string][]Result{}
	for _, r := range rep.Results {
		if _, ok := byKey[r.Key()]; !ok {
			keys = append(keys, r.Key())
		}
		byKey[r.Key()] = append(byKey[r.Key()], r)
	}
	col := colors(rep.Results)
	for _, k := range keys {
		rs := byKey[k]
		what := "pull time per node"
		if rs[0].Scenario == ScenarioRanges {
			what = "time per Range GET"
		}
		var pulls, bytes []series
		var cdf, arrivals []line
		size := 0.0
		for _, r := range rs {
			var all []float64
			var ub []float64
			for _, run := range r.Runs {
				if run.Error == "" {
					all = append(all, run.PullS...)
					ub = append(ub, float64(run.Upstream.BlobBytes))
					size = float64(run.Upstream.BlobSize)
				}
			}
			pulls = append(pulls, series{name: r.Target, values: all, color: col[r.Target]})
			if r.Target != TargetBare {
				var v []float64
				if len(ub) > 0 {
					v = []float64{Median(ub) / mib}
				}
				bytes = append(bytes, series{name: r.Target, values: v, color: col[r.Target]})
			}
			if run := medianRun(r); run != nil && len(run.PerNode) > 1 && len(all) > 1 {
				cdf = append(cdf, cdfLine(r.Target, col[r.Target], all))
				st, dn := arrivalLines(r.Target, col[r.Target], run.PerNode)
				arrivals = append(arrivals, st, dn)
			}
		}
		sizeMiB := size / mib
		format := func(v float64) string {
			if sizeMiB == 0 {
				return fmt.Sprintf("%.2f MiB", v)
			}
			return fmt.Sprintf("%.2f MiB (%.2f×)", v, v/sizeMiB)
		}
		sec := htmlSection{
			Title: k,
			Note:  scenarioNotes[rs[0].Scenario],
			Charts: []template.HTML{
				template.HTML(boxPlotSVG(fmt.Sprintf("%s: %s, all runs (box p25–p75, bar p50, dot p95, whiskers min–max)", k, what), "seconds", pulls)),
				template.HTML(barSVG(fmt.Sprintf("%s: upstream blob bytes, median run (dashed line: the blobs' size)", k), "MiB", bytes, sizeMiB, format)),
			},
		}
		if len(cdf) > 0 {
			sec.Charts = append(sec.Charts,
				template.HTML(lineSVG(fmt.Sprintf("%s: time to pull the whole set, CDF across nodes, all runs", k), "seconds", "share of nodes", 1, cdf)),
				template.HTML(lineSVG(fmt.Sprintf("%s: arrivals over time, median run (dashed: nodes started, solid: nodes done)", k), "seconds since the start", "nodes", maxNodes(arrivals), arrivals)))
		}
		out = append(out, sec)
	}
	return out
}

// maxNodes is the highest count of arrival lines.
func maxNodes(ls []line) float64 {
	m := 1.0
	for _, l := range ls {
		for _, p := range l.pts {
			m = max(m, p.y)
		}
	}
	return m
}
