package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape returns the sum of the samples of metric name on url's /metrics
// whose labels include label (`key="value"`; "" for all), 0 when there is
// none.
func scrape(ctx context.Context, url, name, label string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fams, err := metricFamilies(ctx, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, url+"/metrics", "", "")
	if err != nil {
		return 0, err
	}
	key, value, _ := strings.Cut(label, "=")
	if v, err := strconv.Unquote(value); err == nil {
		value = v
	}
	var sum float64
	for _, m := range fams[name].GetMetric() {
		if label == "" || hasLabel(m, key, value) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return sum, nil
}

// hasLabel reports whether m has the label key=value.
func hasLabel(m *dto.Metric, key, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == key && l.GetValue() == value {
			return true
		}
	}
	return false
}

// metricFamilies GETs url, a Prometheus text exposition (with Basic
// credentials when user is set), and parses it.
func metricFamilies(ctx context.Context, c *http.Client, url, user, pass string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return fams, nil
}
