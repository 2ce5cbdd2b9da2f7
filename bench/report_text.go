package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the summary table and the checks for a terminal.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttarget\truns\twall s\tp50 s\tp95 s\tp99 s\tmax s\tTTFB ms\tMB/s\tup req\tfetch/blob\tup bytes\terrors\tfailed\tcorrupt\tRSS+ MiB\tCPU s/GiB\t")
	for _, r := range rep.Results {
		s := r.Summary
		if s.Runs == 0 {
			fmt.Fprintf(tw, "%s\t%s\t0/%d\t(every run failed)\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Key(), r.Target, len(r.Runs))
			continue
		}
		fetch := s.fetchCell("-")
		rss, cpu := "-", "-"
		if s.PeakRSS > 0 {
			rss, cpu = fmt.Sprintf("%.1f", s.PeakAboveIdle/mib), fmt.Sprintf("%.2f", s.CPUSPerGiB)
		}
		runs := fmt.Sprint(s.Runs)
		if s.Errored > 0 {
			runs = fmt.Sprintf("%d/%d", s.Runs, s.Runs+s.Errored)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t%.1f\t%.0f\t%s\t%.2f×\t%d\t%d\t%d\t%s\t%s\t\n",
			r.Key(), r.Target, runs, s.WallS, s.PullP50, s.PullP95, s.PullP99, s.PullMax, s.TTFBP50*1000, s.MBps,
			s.UpstreamRequests, fetch, s.BytesRatio, s.Errors, s.FailedPulls, s.Corrupt, rss, cpu)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nmedians of runs; errors/failed/corrupt summed over runs; fetch/blob = successful upstream blob GETs per blob (min-max over runs);")
	fmt.Fprintln(w, "up bytes = upstream blob bytes / size of the blobs pulled; RSS+ = peak RSS above idle during the measurement.")
	if rep.Machine.Load != "" {
		fmt.Fprintf(w, "load average %s at the start, %s at the end.\n", rep.Machine.Load, rep.Machine.LoadEnd)
	}
	rep.writeStorage(w)
	rep.writeFailover(w)
	for _, r := range rep.Registries {
		up := "nothing"
		if r.Upstream != "" {
			up = r.Upstream
		}
		fmt.Fprintf(w, "%s = %s%s with %s; upstream counted by %s\n", r.Name, r.URL, "/v2/"+r.Prefix, r.Credentials, up)
	}
	rep.writeDetails(w)
	if len(rep.Checks) > 0 {
		fmt.Fprintln(w, "\nairlock targets:")
		for _, c := range rep.Checks {
			fmt.Fprintf(w, "  %-4s %-44s want %-22s got %s\n", c.verdict(), c.Name, c.Want, c.Got)
		}
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintf(w, "\n%d runs could not be measured:\n", len(rep.Errors))
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(e, "\n", "\n    "))
		}
	}
	return nil
}

// fetchCell is the fetch/blob column: min-max over runs when counted per
// blob (sep between them), the mean over the blobs when only totals are
// known (airlock's metrics), "-" when nothing was counted.
func (s Summary) fetchCell(sep string) string {
	switch {
	case s.UpstreamSource == "":
		return "-"
	case s.UpstreamSource == sourceAirlock:
		return fmt.Sprintf("~%.2f", s.FetchesPerBlob)
	case s.FetchesPerBlobMin != s.FetchesPerBlobMax:
		return fmt.Sprintf("%d%s%d", s.FetchesPerBlobMin, sep, s.FetchesPerBlobMax)
	}
	return fmt.Sprint(s.FetchesPerBlobMax)
}

func (c Check) verdict() string {
	switch {
	case !c.Judged:
		return "n/a"
	case c.Pass:
		return "PASS"
	}
	return "FAIL"
}
