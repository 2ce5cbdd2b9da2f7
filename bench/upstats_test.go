package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock/airlock/upstream/mar"
)

// A registry that exports airlock's metrics (this fake counts one upstream
// GET per blob GET it answers, and 100 bytes each) is read through
// /metrics, with the admin's credentials: the run's upstream figures are
// the counters' growth during the run.
func TestUpstreamFromAirlockMetrics(t *testing.T) {
	t.Setenv("BENCH_TEST_ADMIN_PW", "pw")
	m := startMAR(t)
	bare := bareHandler(m.Catalog())
	var blobGETs, unauthorized atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pw" {
				unauthorized.Add(1)
				http.Error(w, "admin only", http.StatusUnauthorized)
				return
			}
			n := blobGETs.Load()
			fmt.Fprintf(w, "# TYPE %s counter\n%s{kind=\"blob\",method=\"GET\",rule=\"r\"} %d\n%s{kind=\"manifest\",method=\"HEAD\",rule=\"r\"} 3\n",
				metricUpRequests, metricUpRequests, n, metricUpRequests)
			fmt.Fprintf(w, "# TYPE %s counter\n%s{rule=\"r\"} %d\n", metricUpBytes, metricUpBytes, n*100)
			fmt.Fprintf(w, "# TYPE %s counter\n%s{code=\"200\",host=\"up\",method=\"GET\"} %d\n%s{code=\"503\",host=\"up\",method=\"GET\"} 2\n",
				metricUpHTTP, metricUpHTTP, n, metricUpHTTP)
			fmt.Fprintf(w, "# TYPE %s counter\n%s{kind=\"blob\",rule=\"r\"} %d\n", metricCacheMisses, metricCacheMisses, n)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGETs.Add(1)
		}
		bare.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rep, err := registryRun(t, Options{Registries: []string{srv.URL}, Nodes: 2, Runs: 1,
		Auth: AuthOptions{Username: "admin", PasswordEnv: "BENCH_TEST_ADMIN_PW"}})
	if err != nil {
		t.Fatal(err)
	}
	u := rep.Results[0].Runs[0].Upstream
	want := int64(2 * rep.Catalog.Blobs)
	if u.Source != sourceAirlock || u.BlobFetches != want || u.Bytes != want*100 || u.Requests != want || u.Errors != 0 ||
		u.CacheMisses != want || u.ByKind["GET blob"] != want || u.ByKind["HEAD manifest"] != 0 || unauthorized.Load() != 0 {
		t.Fatalf("upstream %+v; want %d blob fetches", u, want)
	}
	if s := rep.Results[0].Summary; s.UpstreamSource != sourceAirlock || s.fetchCell("-") != "~2.00" {
		t.Fatalf("summary fetch/blob %q", s.fetchCell("-"))
	}
	if rep.Registries[0].Upstream != srv.URL+"/metrics" || !strings.Contains(rep.Registries[0].Credentials, "user admin") {
		t.Fatalf("registry info %+v", rep.Registries[0])
	}
}

// What the emulator counted between two readings.
func TestDiffStats(t *testing.T) {
	t.Parallel()
	row := func(d string, n, b int64) mar.RequestStat {
		return mar.RequestStat{Method: http.MethodGet, Kind: mar.KindBlobData, Digest: d, Status: 200, Count: n, Bytes: b}
	}
	before := mar.Stats{Requests: []mar.RequestStat{row("a", 1, 10), row("b", 2, 20)}, Connections: map[string]int64{"data": 3}}
	after := mar.Stats{Requests: []mar.RequestStat{row("a", 1, 10), row("b", 5, 50), row("c", 1, 7)}, Connections: map[string]int64{"data": 5}}
	d := diffStats(before, after)
	if d.Fetches("a") != 0 || d.Fetches("b") != 3 || d.Fetches("c") != 1 || d.BytesSent != 37 || d.Statuses["200"] != 4 || d.Connections["data"] != 2 {
		t.Fatalf("diff %+v", d)
	}
}
