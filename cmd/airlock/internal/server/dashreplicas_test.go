package server

import (
	"fmt"
	"maps"
	"testing"
)

// replicaMetrics lists the metrics a replica on Azure Blob Storage in a
// cluster registers: serve's own, its cluster node's (membership, peer
// client and handler, fill records), the engine's fills by role, the
// content store's spool and the metadata index's. Building it contacts
// nothing.
func replicaMetrics(t *testing.T) map[string][]string {
	t.Helper()
	return metricsOf(t, fmt.Sprintf("listen: 127.0.0.1:0\nstorage:\n  dir: %s\n  driver: azure\n  azure:\n"+
		"    serviceURL: http://127.0.0.1:1/devstoreaccount1\n    accountName: devstoreaccount1\n    accountKey: a2V5\n"+
		"cluster:\n  self: 127.0.0.1:5000\n", t.TempDir()))
}

// The replicas row shows, per replica, what the cluster and the Azure
// stores export, grouped only by labels those metrics have.
func TestGrafanaDashboardReplicas(t *testing.T) {
	t.Parallel()
	_, rows := loadDashboard(t)
	server, replica := exportedMetrics(t), replicaMetrics(t)
	exported := maps.Clone(server)
	maps.Copy(exported, replica)
	used := checkPanels(t, rows[replicasRow], exported)
	for _, want := range []string{
		"airlock_cluster_peers", "airlock_cluster_relayed_bytes_total", "airlock_cluster_fills_total",
		"airlock_cluster_lease_acquired_total", "airlock_cluster_lease_lost_total", "airlock_cluster_takeovers_total",
		"airlock_spool_hits_total", "airlock_spool_misses_total", "airlock_meta_azure_requests_total",
		"airlock_upstream_bytes_total", "airlock_storage_requests_total",
	} {
		if !used[want] {
			t.Errorf("the %s row does not show %s", replicasRow, want)
		}
	}
}
