package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// metricValue reads one unlabelled sample from /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// With storage.maxBytes set, pulling past the high watermark wakes the
// collector on its own: the store goes back under quota, the pinned image
// and the most recent ones stay and pull with the upstream down, and the
// pins API lists pins from the file and from the API.
func TestServeKeepsQuota(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	for i := range 6 {
		up.PushImage(t, fmt.Sprintf("oss/q/img%d:1", i), 100_000, 1)
	}
	addr := upstreamtest.Unreachable(t)
	cfg := configtest.Write(t, fmt.Sprintf(`listen: %s
storage:
  dir: %s
  maxBytes: 350KB
  highWatermark: 0.9
  lowWatermark: 0.8
upstreams:
  - {host: mcr.microsoft.com, endpoint: %s}
rules:
  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*, tagTTL: 1h, tagList: local}
pins:
  - aks-managed-repository/oss/q/img0:1
log:
  level: warn
`, addr, filepath.Join(t.TempDir(), "data"), up.URL()))
	startServeReady(t, cfg)
	base := "http://" + addr
	pl := newPuller(base)
	repo := func(i int) string { return fmt.Sprintf("aks-managed-repository/oss/q/img%d", i) }
	for i := range 6 {
		if err := pl.pull(repo(i), "1", ""); err != nil {
			t.Fatalf("img%d: %v", i, err)
		}
		time.Sleep(5 * time.Millisecond) // distinct access times
	}
	polltest.Until(t, 15*time.Second, "the store back under its high watermark", func() bool {
		return metricValue(t, base, "airlock_storage_bytes") <= 315_000 && metricValue(t, base, "airlock_evicted_bytes_total") > 0
	})
	if q := metricValue(t, base, "airlock_storage_quota_bytes"); q != 350_000 {
		t.Fatalf("quota metric %v", q)
	}
	// With tagList: local, tags/list tells what is held here.
	has := func(i int) bool {
		resp, err := http.Get(base + "/v2/" + repo(i) + "/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !has(0) || !has(5) || has(1) {
		t.Fatalf("want pinned img0 and recent img5 kept, img1 (least recently used) evicted: %v %v %v", has(0), has(5), has(1))
	}
	up.AddFault(upstreamtest.Fault{Status: 503})
	for i := range 6 {
		if has(i) {
			if err := pl.pull(repo(i), "1", ""); err != nil {
				t.Fatalf("kept img%d does not pull from the cache alone: %v", i, err)
			}
		}
	}

	resp, err := http.Post(base+"/admin/pins", "application/json", strings.NewReader(`{"refs":["aks-managed-repository/oss/q/img5:1"],"owner":"cluster-a"}`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /admin/pins: %v %v", err, resp.Status)
	}
	resp, err = http.Get(base + "/admin/pins")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"pins":[{"ref":"aks-managed-repository/oss/q/img0:1","source":"config"},{"ref":"aks-managed-repository/oss/q/img5:1","source":"api","owner":"cluster-a"}]}`
	if strings.TrimSpace(string(b)) != want {
		t.Fatalf("GET /admin/pins:\n%s\nwant\n%s", b, want)
	}
}
