package server

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// expectedOnceWired are metrics the replicas row shows that no package
// exports yet: the integration of issue 13 (the engine filling through the
// cluster) adds them, with these labels. The test fails once one is
// exported, so that it is taken out of this list.
var expectedOnceWired = map[string][]string{
	"airlock_cluster_fills_total": {"role"}, // role: owner | relay
}

// replicaMetrics lists the metrics a replica on Azure Blob Storage
// registers beside the server's: its cluster node (membership, peer client
// and handler, fill records), the content store's spool and the metadata
// index, built on a container of Azurite as serve will build them.
func replicaMetrics(t *testing.T) map[string][]string {
	t.Helper()
	srv := azuritetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctr, err := azure.Open(ctx, azure.Config{
		ServiceURL: srv.ServiceURL, AccountName: srv.AccountName, AccountKey: srv.AccountKey, Container: "dashboard",
	})
	if err != nil {
		t.Fatal(err)
	}
	reg, log := newMetricsRegistry(), zap.NewNop()
	node, err := cluster.NewNode(ctx, cluster.Config{Self: "127.0.0.1:5000"}, ctr, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Handler(http.NotFoundHandler()); err != nil {
		t.Fatal(err)
	}
	if _, err := azstore.New(ctr, t.TempDir(), azstore.WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	idx, err := azmeta.New(ctx, ctr, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return reg.exported()
}

// The replicas row shows, per replica, what the cluster and the Azure
// stores export (and what the integration will), grouped only by labels
// those metrics have.
func TestGrafanaDashboardReplicas(t *testing.T) {
	t.Parallel()
	_, rows := loadDashboard(t)
	server, replica := exportedMetrics(t), replicaMetrics(t)
	exported := maps.Clone(server)
	maps.Copy(exported, replica)
	for name, labels := range expectedOnceWired {
		if _, ok := exported[name]; ok {
			t.Errorf("%s is exported now: take it out of expectedOnceWired", name)
		}
		exported[name] = labels
	}
	used := checkPanels(t, rows[replicasRow], exported)
	for _, want := range []string{
		"airlock_cluster_peers", "airlock_cluster_relayed_bytes_total", "airlock_cluster_fills_total",
		"airlock_cluster_lease_acquired_total", "airlock_cluster_lease_lost_total", "airlock_cluster_takeovers_total",
		"airlock_spool_hits_total", "airlock_spool_misses_total", "airlock_meta_azure_requests_total",
		"airlock_upstream_bytes_total",
	} {
		if !used[want] {
			t.Errorf("the %s row does not show %s", replicasRow, want)
		}
	}
}
