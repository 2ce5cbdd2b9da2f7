package azuretest

import (
	"context"
	"testing"

	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
)

// New opens a container of its own; Open of the same name is another
// client of the same blobs.
func TestNewAndOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := azuritetest.Start(t)
	a, other := New(t, srv, "t"), New(t, srv, "t")
	if a.Name() == other.Name() {
		t.Fatalf("two new containers are both %q", a.Name())
	}
	if _, err := a.Put(ctx, "x", []byte("kept"), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	if b, _, err := Open(t, srv, a.Name()).Get(ctx, "x"); err != nil || string(b) != "kept" {
		t.Fatalf("Get through another client: %q %v", b, err)
	}
	if _, _, err := other.Get(ctx, "x"); err == nil {
		t.Fatal("the other new container holds the blob too")
	}
}
