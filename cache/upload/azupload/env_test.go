package azupload_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/azupload"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

var bg = context.Background()

// replica is one airlock replica's view of a shared container: its own
// clients, index (with its read cache), content store (with its spool)
// and session store.
type replica struct {
	ctr     *azure.Container
	idx     *azmeta.Index
	content *azstore.Store
	uploads *azupload.Store
}

// replicas opens n replicas on one new container.
func replicas(t testing.TB, srv *azuritetest.Server, n int, l upload.Limits, opts ...azupload.Option) []*replica {
	t.Helper()
	name := azuritetest.ContainerName("u")
	var out []*replica
	for range n {
		out = append(out, openReplica(t, srv, name, l, opts...))
	}
	return out
}

func openReplica(t testing.TB, srv *azuritetest.Server, name string, l upload.Limits, opts ...azupload.Option) *replica {
	t.Helper()
	return openReplicaWith(t, srv, name, l, nil, opts...)
}

// openReplicaWith is openReplica whose container client has copts.
func openReplicaWith(t testing.TB, srv *azuritetest.Server, name string, l upload.Limits, copts []azure.Option, opts ...azupload.Option) *replica {
	t.Helper()
	ctr := azuretest.Open(t, srv, name, copts...)
	idx, err := azmeta.New(bg, ctr, zap.NewNop(), prometheus.NewRegistry(), azmeta.WithSettle(0))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := azstore.New(ctr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() }) // before the spool's TempDir goes
	up, err := azupload.New(ctr, idx, cs, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), l, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &replica{ctr: ctr, idx: idx, content: cs, uploads: up}
}

// appendRaw appends b to the append blob name under the lease leaseID, as
// a request does, without touching the session's record.
func appendRaw(t testing.TB, r *replica, name, leaseID string, b []byte) {
	t.Helper()
	_, err := r.ctr.Client().NewAppendBlobClient(name).AppendBlock(bg, streaming.NopCloser(bytes.NewReader(b)),
		&appendblob.AppendBlockOptions{AccessConditions: azure.Cond{LeaseID: leaseID}.Access()})
	if err != nil {
		t.Fatal(err)
	}
}
