package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
)

// FillRecords answers what a garbage collector must know: a blob with a
// held claim, or a record created a moment ago and not leased yet, is
// being filled; no record, a released claim, a broken lease and an old
// unleased record are not.
func TestFillRecordsFilling(t *testing.T) {
	t.Parallel()
	e := &azEnv{srv: azuritetest.Start(t)}
	ctx := context.Background()
	rs := e.replicas(t, &liveSet{}, "10.0.0.5:5000")
	fr := NewFillRecords(rs[0].c)
	check := func(what string, d string, want bool) {
		t.Helper()
		got, err := fr.Filling(ctx, dgst(d))
		if err != nil || got != want {
			t.Fatalf("%s: filling %v, %v; want %v", what, got, err, want)
		}
	}
	check("no record", "none", false)

	c, holder, err := rs[0].ClaimFill(ctx, dgst("claimed"))
	if err != nil || c == nil {
		t.Fatalf("claim: %v %q %v", c, holder, err)
	}
	check("a held claim", "claimed", true)
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	check("a released claim", "claimed", false)

	name := FillName(dgst("unleased"))
	if _, err := rs[0].c.Put(ctx, name, []byte(`{"holder":""}`), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	check("a record just created", "unleased", true)
	fr.now = func() time.Time { return time.Now().Add(2 * unclaimedFresh) }
	check("a record nobody leased for two minutes", "unleased", false)
	fr.now = time.Now

	name = FillName(dgst("broken"))
	if _, err := rs[0].c.Put(ctx, name, []byte(`{"holder":"10.0.0.6:5000"}`), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs[0].c.AcquireLease(ctx, name, azure.MinLease); err != nil {
		t.Fatal(err)
	}
	check("a leased record", "broken", true)
	if _, err := rs[0].c.BreakLease(ctx, name, 0); err != nil {
		t.Fatal(err)
	}
	check("a broken lease (a takeover is due)", "broken", false)
}
