package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/proctest"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// labRun is a running `airlock lab --nodes N` and what it printed.
type labRun struct {
	*proctest.Proc
	mar   *marServer // its emulator (the host's network)
	pe    string     // the private endpoint's namespace
	nodes []labNode
}

// labNode is one node as the lab described it.
type labNode struct {
	netns, socket, pull string // pull: the printed command
	pids                []int  // processes in its namespace (its containerd)
}

var (
	reLabMar  = regexp.MustCompile(`upstream \(MAR emu\)\s+(http://\S+)`)
	reLabPE   = regexp.MustCompile(`private endpoint \(netns (\S+)\)`)
	reLabPull = regexp.MustCompile(`(?m)^    ((?:ip netns exec (\S+) )?ctr --address (\S+) images pull --hosts-dir \S+ mcr\.microsoft\.com/oss/kubernetes/pause:3\.10)$`)
)

// startLab runs `airlock lab --nodes n` on dir (with extra environment)
// and waits until it is up.
func startLab(t *testing.T, dir string, n int, env ...string) *labRun {
	t.Helper()
	statAirlock(t)
	p := startProc(t, "airlock lab", env, airlockBin, "lab", "--dir", dir, "--listen", upstreamtest.Unreachable(t),
		"--mar-listen", upstreamtest.Unreachable(t), "--nodes", strconv.Itoa(n))
	p.WaitOutput(t, regexp.MustCompile(`Ctrl-C stops the lab\.`), 2*time.Minute)
	out := p.Stdout.String()
	l := &labRun{Proc: p, mar: &marServer{url: reLabMar.FindStringSubmatch(out)[1]}}
	if m := reLabPE.FindStringSubmatch(out); m != nil {
		l.pe = m[1]
	}
	for _, m := range reLabPull.FindAllStringSubmatch(out, -1) {
		nd := labNode{netns: m[2], socket: m[3], pull: m[1]}
		if nd.pids = pidsWith(t, filepath.Dir(nd.socket)); len(nd.pids) == 0 {
			t.Fatalf("no process runs with %s", filepath.Dir(nd.socket))
		}
		l.nodes = append(l.nodes, nd)
	}
	if len(l.nodes) != n {
		t.Fatalf("the lab printed %d pull commands, want %d:\n%s", len(l.nodes), n, out)
	}
	return l
}

// pidsWith returns the processes whose command line holds s.
func pidsWith(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(cmdline), s) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func nodeNetns(nodes []labNode) []string {
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.netns)
	}
	return out
}

// checkGone waits (up to 10 s) until nothing of l is left: no process
// in its nodes' namespaces, no namespace, no interface linked to one, no
// run directory.
func (l *labRun) checkGone(t *testing.T, ctx context.Context) {
	t.Helper()
	var names []string
	for _, ns := range append([]string{l.pe}, nodeNetns(l.nodes)...) {
		if ns != "" {
			names = append(names, ns)
		}
	}
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = left[:0]
		for _, nd := range l.nodes {
			for _, pid := range nd.pids {
				if alive(pid) {
					left = append(left, fmt.Sprintf("process %d of %s", pid, nd.netns))
				}
			}
			if _, err := os.Stat(filepath.Dir(filepath.Dir(nd.socket))); err == nil {
				left = append(left, "run directory "+filepath.Dir(filepath.Dir(nd.socket)))
			}
		}
		all := ip(t, ctx, "netns", "list") + ip(t, ctx, "-o", "link", "show")
		for _, ns := range names {
			if strings.Contains(all, ns) {
				left = append(left, "namespace "+ns+" (or a link to it)")
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after the lab stopped: %s", strings.Join(left, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pullEverywhere runs the printed pull command on every node at once, and
// checks that each node has pause complete and unpacked with the
// emulator's digest, and that each of its blobs went upstream once.
func (l *labRun) pullEverywhere(t *testing.T, ctx context.Context) {
	t.Helper()
	pause := mustImage(t, l.mar.images(t, ctx), "oss/kubernetes/pause:3.10")
	var wg sync.WaitGroup
	for _, nd := range l.nodes {
		wg.Go(func() {
			if _, err := runCmd(ctx, 2*time.Minute, nil, "sh", "-c", nd.pull); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	pm, blobs := platformBlobs(t, pause, "linux/amd64")
	for _, nd := range l.nodes {
		ctr, _, _ := strings.Cut(nd.pull, " images pull ")
		check := mustRun(t, ctx, 30*time.Second, "sh", "-c", ctr+" images check")
		line := ""
		for _, ln := range strings.Split(check, "\n") {
			if strings.HasPrefix(ln, "mcr.microsoft.com/oss/kubernetes/pause:3.10 ") {
				line = ln
			}
		}
		if f := strings.Fields(line); len(f) < 3 || f[2] != pause.Digest.String() || !strings.Contains(line, " complete (") || f[len(f)-1] != "true" {
			t.Errorf("%s: pause is not complete and unpacked with the emulator's digest %s:\n%s", nd.pull, pause.Digest, check)
		}
	}
	st := l.mar.stats(t, ctx)
	for _, d := range blobs {
		if n := st.Count("GET", mar.KindBlobData, d.String()); n != 1 {
			t.Errorf("blob %s fetched upstream %d times for %d nodes, want 1", d, n, len(l.nodes))
		}
	}
	t.Logf("%d nodes pulled pause (%s, %d blobs) through airlock: %d upstream requests", len(l.nodes), pm, len(blobs), st.Total())
}

// interrupt is Ctrl-C: the lab exits 0, says it stopped, and leaves
// nothing.
func (l *labRun) interrupt(t *testing.T, ctx context.Context) {
	t.Helper()
	l.Signal(syscall.SIGINT)
	select {
	case <-l.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the lab did not stop within 30s of Ctrl-C")
	}
	if code := l.ExitCode(); code != 0 || !strings.HasSuffix(l.Stdout.String(), "airlock lab: stopped\n") {
		t.Fatalf("the lab exited %d:\n%s\n%s", code, tail(l.Stdout.String(), 500), tail(l.Stderr.String(), 2000))
	}
	l.checkGone(t, ctx)
}

// `airlock lab --nodes 2` (make run NODES=2): two containerd nodes of the
// lab's cluster, each in a namespace whose only route is the private
// endpoint, where airlock listens; the emulator is unreachable from them.
// The pull command the lab prints, run on both nodes at once, unpacks
// pause with the emulator's digests, each blob fetched upstream once
// across both. Ctrl-C stops the lab with exit 0 and leaves no process,
// namespace, link or run directory. Killed (a crash), the lab's containerd
// dies with it (parent-death signal), and the next lab removes the
// namespaces left.
func TestLabNodes(t *testing.T) {
	t.Parallel()
	needRoot(t)
	needTool(t, "containerd")
	needTool(t, "ctr")
	needTool(t, "ip")
	ctx := testContext(t, 4*time.Minute)
	dir := filepath.Join(t.TempDir(), "data")
	l := startLab(t, dir, 2)
	if l.pe == "" {
		t.Fatalf("the lab's nodes are not in network namespaces:\n%s", l.Stdout)
	}

	// The host's own address: a node has no route to it, nor anywhere but
	// the private endpoint.
	var hostAddr string
	if f := strings.Fields(ip(t, ctx, "-4", "-o", "addr", "show", "scope", "global")); len(f) >= 4 {
		hostAddr, _, _ = strings.Cut(f[3], "/")
	}
	for i, nd := range l.nodes {
		routes := strings.TrimSpace(ip(t, ctx, "-n", nd.netns, "-4", "route", "show"))
		if want := fmt.Sprintf("10.224.0.4 dev eth0 scope link src 10.224.0.%d", 5+i); routes != want {
			t.Errorf("%s's routes are not just the private endpoint:\n%s\nwant %s", nd.netns, routes, want)
		}
		if r6 := strings.TrimSpace(ip(t, ctx, "-n", nd.netns, "-6", "route", "show")); r6 != "" {
			t.Errorf("%s has IPv6 routes:\n%s", nd.netns, r6)
		}
		if hostAddr != "" {
			u := "http://" + hostAddr + ":" + l.mar.url[strings.LastIndexByte(l.mar.url, ':')+1:] + "/v2/"
			if _, err := nsHTTP(ctx, nd.netns, "GET", u); err == nil || !strings.Contains(err.Error(), "network is unreachable") {
				t.Errorf("%s → this machine %s: %v, want network is unreachable", nd.netns, u, err)
			}
		}
	}
	l.pullEverywhere(t, ctx)
	l.interrupt(t, ctx)

	// A crash: the kernel stops the nodes' containerd; the next lab removes
	// the namespaces left.
	crashed := startLab(t, dir, 1)
	crashed.Signal(syscall.SIGKILL)
	<-crashed.Exited()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range crashed.nodes[0].pids {
		for alive(pid) { // the pid of containerd itself (ip netns exec execs it)
			if time.Now().After(deadline) {
				t.Fatalf("containerd %d outlived the lab that was killed", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	next := startLab(t, dir, 1)
	for _, ns := range []string{crashed.pe, crashed.nodes[0].netns} {
		if !strings.Contains(next.Stdout.String(), "removed network namespace "+ns+", left by a lab that crashed") {
			t.Errorf("the next lab did not remove %s:\n%s", ns, next.Stdout)
		}
	}
	crashed.checkGone(t, ctx)
	next.interrupt(t, ctx)
}

// Without iproute2 (no namespaces) the nodes share this machine's network:
// the lab says so, their hosts.toml points at airlock's own address with
// the emulator as the fallback server (never the real MAR), and the
// printed commands pull through airlock alike.
func TestLabNodesHostNetwork(t *testing.T) {
	t.Parallel()
	needRoot(t)
	bins := t.TempDir()
	for _, tool := range []string{"containerd", "ctr"} {
		if err := os.Symlink(needTool(t, tool), filepath.Join(bins, tool)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testContext(t, 2*time.Minute)
	dir := filepath.Join(t.TempDir(), "data")
	l := startLab(t, dir, 2, "PATH="+bins)
	if l.pe != "" || !strings.Contains(l.Stdout.String(), "ip (iproute2) is not on PATH: the nodes share this machine's network (install it: scripts/install-tools.sh ip)") {
		t.Fatalf("the lab did not say its nodes share the host's network:\n%s", l.Stdout)
	}
	hosts, err := os.ReadFile(filepath.Join(dir, "nodes", "node1", "certs.d", "mcr.microsoft.com", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hosts), fmt.Sprintf("server = %q", l.mar.url)) || !strings.Contains(string(hosts), `[host."http://127.0.0.1:`) {
		t.Errorf("node1's hosts.toml does not point at airlock here, with the emulator as the fallback:\n%s", hosts)
	}
	l.pullEverywhere(t, ctx)
	l.interrupt(t, ctx)
}

// A node that cannot start (here a containerd that exits at once) fails
// the lab's start: exit 1, one line naming the node and its containerd
// log, and nothing left: no namespace of that lab, no run directory.
func TestLabNodesFailedStart(t *testing.T) {
	t.Parallel()
	needRoot(t)
	ipBin, ctrBin := needTool(t, "ip"), needTool(t, "ctr")
	bins := t.TempDir()
	if err := os.WriteFile(filepath.Join(bins, "containerd"), []byte("#!/bin/sh\necho 'containerd: refusing to start' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"ctr": ctrBin, "ip": ipBin} {
		if err := os.Symlink(target, filepath.Join(bins, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testContext(t, time.Minute)
	statAirlock(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startProc(t, "airlock lab", []string{"PATH=" + bins + ":/usr/bin:/bin"}, airlockBin, "lab", "--dir", dir,
		"--listen", upstreamtest.Unreachable(t), "--mar-listen", upstreamtest.Unreachable(t), "--nodes", "2")
	select {
	case <-p.Exited():
	case <-ctx.Done():
		t.Fatal("the lab with a broken containerd did not end")
	}
	stderr := strings.TrimSpace(p.Stderr.String())
	last := stderr[strings.LastIndexByte(stderr, '\n')+1:]
	log := filepath.Join(dir, "nodes", "node1", "containerd.log")
	if code := p.ExitCode(); code != 1 || !strings.HasPrefix(last, "airlock lab: node1: containerd exited: exit status 1 (its log: "+log+")") {
		t.Fatalf("exit %d, last line %q", code, last)
	}
	if b, err := os.ReadFile(log); err != nil || !strings.Contains(string(b), "refusing to start") {
		t.Errorf("%s: %q, %v", log, b, err)
	}
	prefix := fmt.Sprintf("airlock-lab-%d-", p.Cmd.Process.Pid)
	if list := ip(t, ctx, "netns", "list"); strings.Contains(list, prefix) {
		t.Errorf("the failed lab left namespaces:\n%s", list)
	}
	if runs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*")); len(runs) > 0 {
		t.Errorf("the failed lab left run directories: %v", runs)
	}
}
