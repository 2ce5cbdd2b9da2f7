package ociclient

import (
	"context"
	"testing"

	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// After SetEndpoints, requests go to the new endpoint (with a new token
// flow there); a bad endpoint list is refused and changes nothing.
func TestSetEndpoints(t *testing.T) {
	t.Parallel()
	a := upstreamtest.NewAuthRedirect(t, "", "")
	b := upstreamtest.NewAuthRedirect(t, "", "")
	imgA := a.Up.PushImage(t, "oss/kubernetes/pause:3.10", 1000, 1)
	imgB := b.Up.PushImage(t, "oss/kubernetes/pause:3.10", 1000, 1)
	c := newClient(t, a.API.URL)
	r := upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/kubernetes/pause"}
	ctx := context.Background()
	digestOf := func() string {
		t.Helper()
		m, err := c.Manifest(ctx, r, "3.10", true)
		if err != nil {
			t.Fatal(err)
		}
		return m.Digest.String()
	}
	da, _ := imgA.Digest()
	db, _ := imgB.Digest()
	if got := digestOf(); got != da.String() {
		t.Fatalf("before: %s", got)
	}
	if err := c.SetEndpoints([]Endpoint{{Host: "mcr.microsoft.com", URL: "ftp://nope"}}); err == nil {
		t.Fatal("a bad endpoint must be refused")
	}
	if got := digestOf(); got != da.String() {
		t.Fatalf("a refused swap changed the endpoint: %s", got)
	}
	if err := c.SetEndpoints([]Endpoint{{Host: "mcr.microsoft.com", URL: b.API.URL}}); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(); got != db.String() {
		t.Fatalf("after the swap: %s, want %s", got, db)
	}
}
