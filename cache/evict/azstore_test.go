package evict_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta/memmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The quota holds over the Azure content store as over files: the
// collector's wrapper walks the container for its size, refuses a blob
// that cannot fit with content.ErrNoRoom before a byte reaches the
// container, refuses a chunked push as its bytes pass the quota, keeps the
// store's ability to take writes of unknown digest, and counts what
// commits.
func TestQuotaOverAzureStore(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	ctx := context.Background()
	ctr := azuretest.Open(t, srv, "quota")
	az, err := azstore.New(ctr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const quota = 1 << 20
	col, err := evict.New(az, memmeta.New(), zap.NewNop(), prometheus.NewRegistry(), evict.Policy{MaxBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	store := col.Store()
	blob := func(n int, seed byte) ([]byte, digest.Digest) {
		b := bytes.Repeat([]byte{seed}, n)
		return b, digest.FromBytes(b)
	}

	big, bigD := blob(2*quota, 'b')
	if _, err := content.WriteBlob(ctx, store, bigD, big); !errors.Is(err, content.ErrNoRoom) {
		t.Fatalf("a blob twice the quota: %v, want ErrNoRoom", err)
	}
	if _, err := az.Stat(ctx, bigD); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("a refused blob reached the container: %v", err)
	}

	small, smallD := blob(quota/2, 's')
	if _, err := content.WriteBlob(ctx, store, smallD, small); err != nil {
		t.Fatal(err)
	}
	if got := col.Used(); got != quota/2 {
		t.Fatalf("used %d after a commit of %d bytes", got, quota/2)
	}

	pi, ok := store.(content.PendingIngester)
	if !ok {
		t.Fatal("the wrapped Azure store lost its writes of unknown digest")
	}
	p, err := pi.IngestPending(ctx, digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	chunk := bytes.Repeat([]byte{'p'}, quota/4)
	var werr error
	for i := 0; i < 4 && werr == nil; i++ {
		_, werr = p.Write(chunk)
	}
	if !errors.Is(werr, content.ErrNoRoom) {
		t.Fatalf("a chunked push past the quota: %v, want ErrNoRoom", werr)
	}
	if p.Written() > quota/2 {
		t.Fatalf("%d bytes of a chunked push written beside %d committed, quota %d", p.Written(), quota/2, quota)
	}

	rep, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Before != quota/2 {
		t.Fatalf("the walk of the container found %d bytes, want %d", rep.Before, quota/2)
	}
}
