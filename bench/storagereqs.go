package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// storageMetric counts a replica's requests to its storage account by
// area (storage/azure.WithMetrics).
const storageMetric = "airlock_storage_requests_total"

// storagePolls are the areas of requests a replica sends on a timer
// whatever the load (membership listings and container checks, the
// control state's): left out of a run's count.
var storagePolls = []string{"container", "control"}

// storageRequests sums the requests the live replicas of rs sent to their
// storage account for serving (blobs, index, fill records), as their
// /metrics say now.
func (rs *replicaSet) storageRequests(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var sum float64
	for r, inst := range rs.replicas {
		rs.mu.Lock()
		killed := rs.killed[r]
		rs.mu.Unlock()
		if killed {
			continue
		}
		fams, err := metricFamilies(ctx, c, inst.url+"/metrics", "", "")
		if err != nil {
			return 0, fmt.Errorf("storage requests of %s: %w", inst.name, err)
		}
		for _, m := range fams[storageMetric].GetMetric() {
			polled := false
			for _, area := range storagePolls {
				polled = polled || hasLabel(m, "area", area)
			}
			if !polled {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int64(sum), nil
}

// storageMeter counts the storage requests of one run of a cluster
// target: the live replicas' count at the end less the one at the start.
// A replica killed during the run takes its count with it.
type storageMeter struct {
	rs     *replicaSet
	before int64
	err    error
}

func startStorageMeter(ctx context.Context, inst *instance) *storageMeter {
	if inst.cluster == nil {
		return nil
	}
	m := &storageMeter{rs: inst.cluster}
	m.before, m.err = m.rs.storageRequests(ctx)
	return m
}

// stop returns the run's count, 0 when it could not be read (or for a
// target that is not a cluster).
func (m *storageMeter) stop(ctx context.Context) int64 {
	if m == nil || m.err != nil {
		return 0
	}
	after, err := m.rs.storageRequests(ctx)
	if err != nil || after < m.before {
		return 0
	}
	return after - m.before
}

// writeStorage lists the cluster results' storage requests per run.
func (rep *Report) writeStorage(w io.Writer) {
	var cells []string
	for _, r := range rep.Results {
		if n := r.Summary.StorageRequests; n > 0 {
			cells = append(cells, fmt.Sprintf("%s %.0f", r.Key(), n))
		}
	}
	if len(cells) > 0 {
		fmt.Fprintf(w, "storage requests per run (%s, median; blobs, index and fill records of every live replica): %s\n",
			TargetCluster, strings.Join(cells, ", "))
	}
}
