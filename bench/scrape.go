package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape returns the sum of the samples of metric name on url's /metrics
// (Prometheus text format) whose labels contain label ("" for all), 0 when
// there is none.
func scrape(ctx context.Context, url, name, label string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series, rest, _ := strings.Cut(line, " ")
		if j := strings.LastIndexByte(line, '}'); j >= 0 {
			series, rest = line[:j+1], line[j+1:]
		}
		metric, labels, _ := strings.Cut(series, "{")
		value := strings.Fields(rest)
		if metric != name || !strings.Contains(labels, label) || len(value) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(value[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics: %s: %w", series, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	return sum, nil
}
