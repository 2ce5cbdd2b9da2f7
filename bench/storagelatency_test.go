package bench

import (
	"context"
	"errors"
	"net/http"
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
