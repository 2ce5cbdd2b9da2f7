package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
)

// --storage-latency: the replicas reach the account through a proxy that
// holds each request; shared-key requests (a write, a read, a lease) pass
// it unchanged, none sooner than the latency, and Stop stops the account.
func TestDelayedAccount(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	stopped := false
	acc := &Account{ServiceURL: srv.ServiceURL, Name: srv.AccountName, Key: srv.AccountKey, Stop: func() { stopped = true }}
	const d = 20 * time.Millisecond
	delayed, err := delayedAccount(acc, d)
	if err != nil {
		t.Fatal(err)
	}
	if delayed.ServiceURL == acc.ServiceURL || delayed.Name != acc.Name || delayed.Key != acc.Key {
		t.Fatalf("delayed account %+v of %+v", delayed, acc)
	}
	ctx := context.Background()
	start := time.Now()
	c, err := azure.Open(ctx, azure.Config{ServiceURL: delayed.ServiceURL, AccountName: delayed.Name, AccountKey: delayed.Key, Container: azuritetest.ContainerName("delayed")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "r", []byte("through the proxy"), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	if b, _, err := c.Get(ctx, "r"); err != nil || string(b) != "through the proxy" {
		t.Fatalf("read back %q, %v", b, err)
	}
	l, err := c.AcquireLease(ctx, "r", azure.MinLease)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Open asks for the container and creates it: six requests in all.
	if took := time.Since(start); took < 6*d {
		t.Fatalf("six requests took %s through a proxy holding each for %s", took, d)
	}
	delayed.Stop()
	if !stopped {
		t.Fatal("Stop did not stop the account")
	}
	if resp, err := http.Get(delayed.ServiceURL + "?comp=list"); err == nil {
		resp.Body.Close()
		t.Fatalf("the proxy still answers after Stop: %s", resp.Status)
	}
}

// A latency out of range is the command's usage error.
func TestStorageLatencyValidated(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		o := Options{Cluster: ClusterOptions{StorageLatency: d}}
		if err := o.validateCluster(); !errors.Is(err, ErrUsage) {
			t.Errorf("--storage-latency %s: %v, want a usage error", d, err)
		}
	}
}

// A replica's /metrics with its storage requests: n blob reads, and polls
// that are never counted.
func storageReplica(t *testing.T, n *atomic.Int64) *instance {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE %s counter\n", storageMetric)
		fmt.Fprintf(w, "%s{area=\"blobs\",method=\"GET\",code=\"200\"} %d\n", storageMetric, n.Load())
		fmt.Fprintf(w, "%s{area=\"meta\",method=\"PUT\",code=\"201\"} 3\n", storageMetric)
		fmt.Fprintf(w, "%s{area=\"container\",method=\"GET\",code=\"200\"} %d\n", storageMetric, 1000+n.Load())
		fmt.Fprintf(w, "%s{area=\"control\",method=\"HEAD\",code=\"200\"} %d\n", storageMetric, 2000+n.Load())
	}))
	t.Cleanup(srv.Close)
	return &instance{name: srv.URL, url: srv.URL}
}

// A cluster run counts the live replicas' storage requests for serving,
// not their timed polls nor a replica killed during the run; the report
// lists the median per result.
func TestStorageRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var a, b atomic.Int64
	rs := &replicaSet{replicas: []*instance{storageReplica(t, &a), storageReplica(t, &b)}, killed: make([]bool, 2)}
	inst := &instance{name: TargetCluster, cluster: rs}
	m := startStorageMeter(ctx, inst)
	a.Add(10)
	b.Add(7)
	if got := m.stop(ctx); got != 17 {
		t.Fatalf("storage requests of the run: %d, want 17", got)
	}
	m = startStorageMeter(ctx, inst)
	a.Add(5)
	rs.killed[1] = true
	if got := m.stop(ctx); got != 0 {
		t.Fatalf("a run whose count went down (a replica killed): %d, want 0 (unknown)", got)
	}
	if m := startStorageMeter(ctx, &instance{name: TargetAirlock}); m.stop(ctx) != 0 {
		t.Fatal("a target that is not a cluster has storage requests")
	}
	rep := &Report{Results: []Result{
		{Scenario: ScenarioStorm, Target: TargetCluster, Summary: Summary{Runs: 1, StorageRequests: 587}},
		{Scenario: ScenarioStorm, Target: TargetAirlock, Summary: Summary{Runs: 1}},
	}}
	var out bytes.Buffer
	rep.writeStorage(&out)
	if want := "storm 587\n"; !strings.HasSuffix(out.String(), want) || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("report line %q, want one line ending %q", out.String(), want)
	}
}
