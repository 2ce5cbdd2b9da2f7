package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
)

// Namespaces this suite makes are named airlock-e2e-<pid of the test
// binary>-<role> (labnode.NetnsName), so a run can recognise (and remove)
// what a crashed earlier run of this suite left behind, and never touches
// anything else.
const nsPrefix = "airlock-e2e-"

// ip runs an iproute2 command (or fails the test).
func ip(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	needTool(t, "ip")
	out, err := labnode.IP(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newNetns creates an empty network namespace with its loopback up, and
// deletes it at cleanup (after the processes started later in the test,
// cleanups running last-in first-out). IPv6 is off so that the IPv4 routes
// shown are all the routes there are.
func newNetns(t *testing.T, ctx context.Context, role string) string {
	t.Helper()
	needTool(t, "ip")
	name := labnode.NetnsName(nsPrefix, os.Getpid(), role)
	if err := labnode.AddNetns(ctx, name); err != nil {
		unavailable(t, "cannot create a network namespace ("+err.Error()+")", "run as root on a kernel with network namespaces")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := labnode.DeleteNetns(ctx, name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

// removeStaleNamespaces deletes namespaces a crashed earlier run of this
// suite left (their test binary is gone), stopping the processes it had
// started in them: only ever this suite's airlock, emulator and containerd.
func removeStaleNamespaces(t *testing.T, ctx context.Context) {
	t.Helper()
	needTool(t, "ip")
	removed, err := labnode.RemoveStale(ctx, nsPrefix)
	for _, ns := range removed {
		t.Logf("removed namespace %s left by an earlier run", ns)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// veth links namespaces a and b with a veth pair (ends named after the
// peer's role, created directly in the namespaces: nothing appears in the
// host's) and gives each end a /32 address with a host route to the other
// end only.
func veth(t *testing.T, ctx context.Context, a, aRole, aAddr, b, bRole, bAddr string) {
	t.Helper()
	if err := labnode.Link(ctx,
		labnode.End{NS: a, Dev: "to-" + bRole, Addr: aAddr},
		labnode.End{NS: b, Dev: "to-" + aRole, Addr: bAddr}); err != nil {
		t.Fatal(err)
	}
}
