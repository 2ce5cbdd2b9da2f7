package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Namespaces this suite makes are named airlock-e2e-<pid of the test
// binary>-<role>, so a run can recognise (and remove) what a crashed
// earlier run of this suite left behind, and never touches anything else.
const nsPrefix = "airlock-e2e-"

var reOurNS = regexp.MustCompile(`^` + nsPrefix + `(\d+)-[a-z0-9]+$`)

// ip runs an iproute2 command (or fails the test).
func ip(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	return mustRun(t, ctx, 20*time.Second, append([]string{needTool(t, "ip")}, args...)...)
}

// newNetns creates an empty network namespace with its loopback up, and
// deletes it at cleanup (after the processes started later in the test,
// cleanups running last-in first-out). IPv6 is off so that the IPv4 routes
// shown are all the routes there are.
func newNetns(t *testing.T, ctx context.Context, role string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), role)
	if _, err := runCmd(ctx, 20*time.Second, nil, needTool(t, "ip"), "netns", "add", name); err != nil {
		unavailable(t, "cannot create a network namespace ("+err.Error()+")", "run as root on a kernel with network namespaces")
	}
	t.Cleanup(func() {
		if _, err := runCmd(context.Background(), 20*time.Second, nil, "ip", "netns", "del", name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	// Best effort: a kernel without IPv6 has nothing to turn off.
	_, _ = runCmd(ctx, 10*time.Second, nil, "ip", "netns", "exec", name, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
	ip(t, ctx, "-n", name, "link", "set", "lo", "up")
	return name
}

// removeStaleNamespaces deletes namespaces a crashed earlier run of this
// suite left (their test binary is gone), stopping the processes it had
// started in them: only ever this suite's airlock, emulator and containerd.
func removeStaleNamespaces(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, line := range strings.Split(ip(t, ctx, "netns", "list"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := reOurNS.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // this run's, or a run still going
		}
		for _, p := range strings.Fields(ip(t, ctx, "netns", "pids", f[0])) {
			if n, err := strconv.Atoi(p); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
		t.Logf("removing namespace %s left by an earlier run", f[0])
		ip(t, ctx, "netns", "del", f[0])
	}
}

// veth links namespaces a and b with a veth pair (ends named after the
// peer's role, created directly in the namespaces: nothing appears in the
// host's) and gives each end a /32 address with a host route to the other
// end only.
func veth(t *testing.T, ctx context.Context, a, aRole, aAddr, b, bRole, bAddr string) {
	t.Helper()
	aDev, bDev := "to-"+bRole, "to-"+aRole
	ip(t, ctx, "link", "add", "name", aDev, "netns", a, "type", "veth", "peer", "name", bDev, "netns", b)
	for _, e := range []struct{ ns, dev, addr, peer string }{{a, aDev, aAddr, bAddr}, {b, bDev, bAddr, aAddr}} {
		ip(t, ctx, "-n", e.ns, "addr", "add", e.addr+"/32", "dev", e.dev)
		ip(t, ctx, "-n", e.ns, "link", "set", e.dev, "up")
		ip(t, ctx, "-n", e.ns, "route", "add", e.peer+"/32", "dev", e.dev, "src", e.addr)
	}
}
