package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/bench"
	"github.com/airlock/airlock/internal/proctest"
)

// child is a process of the test, killed at cleanup.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr *proctest.Buffer
	exited         chan struct{}
	err            error
}

func startChildProc(t *testing.T, argv ...string) *child {
	t.Helper()
	c := &child{stdout: &proctest.Buffer{}, stderr: &proctest.Buffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Signal(syscall.SIGKILL)
			<-c.exited
		}
	})
	return c
}

// waitFor waits until re matches what the child wrote to stream.
func (c *child) waitFor(t *testing.T, stream *proctest.Buffer, re *regexp.Regexp) []string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stream.String()); m != nil {
			return m
		}
		select {
		case <-c.exited:
			t.Fatalf("%s exited (%v) before printing %s:\n%s\n%s", c.cmd.Args, c.err, re, c.stdout, c.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %s:\n%s\n%s", c.cmd.Args, re, c.stdout, c.stderr)
		}
	}
}

// wait waits for the child to exit 0.
func (c *child) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v:\n%s", c.cmd.Args, timeout, c.stderr)
	}
	if c.err != nil {
		t.Fatalf("%s: %v\n%s\n%s", c.cmd.Args, c.err, c.stdout, c.stderr)
	}
}

// benchNet is where the processes of a distributed bench run: the hub
// (registry and coordinator) and each agent, and the hub's address.
type benchNet struct {
	hub    []string   // argv prefix running a process in the hub
	agents [][]string // the same for each agent
	host   string     // the hub's address as the agents reach it
	agent  []string   // each agent's address as the hub sees it ("" = loopback)
}

// newBenchNet puts the hub and each agent in a network namespace of its
// own, joined by veth pairs created inside them (nothing appears in the
// host's), when this runs as root with iproute2; else everything runs on
// loopback.
func newBenchNet(t *testing.T, k int) benchNet {
	t.Helper()
	loopback := benchNet{host: "127.0.0.1", agents: make([][]string, k), agent: make([]string, k)}
	ipPath, err := exec.LookPath("ip")
	if os.Geteuid() != 0 || err != nil {
		t.Logf("agents on loopback (network namespaces need root and ip: scripts/install-tools.sh iproute2)")
		return loopback
	}
	ip := func(args ...string) error {
		out, err := exec.Command(ipPath, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	prefix := fmt.Sprintf("airlock-bench-%d-", os.Getpid())
	hub := prefix + "hub"
	if err := ip("netns", "add", hub); err != nil {
		t.Logf("agents on loopback: %v", err)
		return loopback
	}
	t.Cleanup(func() { _ = ip("netns", "del", hub) })
	n := benchNet{host: "10.77.0.1", hub: []string{ipPath, "netns", "exec", hub}}
	steps := [][]string{{"-n", hub, "link", "set", "lo", "up"}, {"-n", hub, "addr", "add", n.host + "/32", "dev", "lo"}}
	for i := range k {
		ns, addr, dev := fmt.Sprintf("%sa%d", prefix, i), fmt.Sprintf("10.77.1.%d", i+2), fmt.Sprintf("a%d", i)
		if err := ip("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ip("netns", "del", ns) })
		n.agents = append(n.agents, []string{ipPath, "netns", "exec", ns})
		n.agent = append(n.agent, addr)
		steps = append(steps,
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", "name", dev, "netns", hub, "type", "veth", "peer", "name", "hub", "netns", ns},
			[]string{"-n", hub, "link", "set", dev, "up"},
			[]string{"-n", ns, "addr", "add", addr + "/32", "dev", "hub"},
			[]string{"-n", ns, "link", "set", "hub", "up"},
			[]string{"-n", ns, "route", "add", n.host + "/32", "dev", "hub", "src", addr},
			[]string{"-n", hub, "route", "add", addr + "/32", "dev", dev, "src", n.host})
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("hub and %d agents in network namespaces %s*", k, prefix)
	return n
}

var (
	marRegistryLine = regexp.MustCompile(`registry (http://[0-9.]+:\d+) data`)
	coordinatorLine = regexp.MustCompile(`coordinator on ([0-9.]+:\d+):`)
	agentJoinedLine = regexp.MustCompile(`agent (\d+) joined: (\S+) from ([0-9.]+):\d+`)
)

// K agents, each a process of the built binary (in a network namespace of
// its own when possible), play one storm against the emulator: the
// coordinator's merged run is the sum of its parts — nodes, bytes,
// requests, errors and every histogram bucket — and the emulator saw
// every node of every agent fetch every blob.
func TestBenchAgentsAsProcesses(t *testing.T) {
	t.Parallel()
	const k, nodes = 3, 9
	bin := airlockBinary(t)
	n := newBenchNet(t, k)
	mar := startChildProc(t, append(n.hub, bin, "mar", "--listen", n.host+":0", "--data-listen", n.host+":0", "--log-level", "warn")...)
	registry := mar.waitFor(t, mar.stdout, marRegistryLine)[1]
	out := t.TempDir()
	coord := startChildProc(t, append(n.hub, bin, "bench", "--registry", registry, "--nodes", fmt.Sprint(nodes), "--agents", fmt.Sprint(k),
		"--listen", n.host+":0", "--wait-agents", "2m", "--run-timeout", "2m", "--out", out)...)
	addr := coord.waitFor(t, coord.stderr, coordinatorLine)[1]
	agents := make([]*child, k)
	for i := range k {
		agents[i] = startChildProc(t, append(n.agents[i], bin, "bench", "agent", "--coordinator", "http://"+addr, "--name", fmt.Sprintf("agent-%d", i))...)
	}
	coord.wait(t, 3*time.Minute)
	for _, a := range agents {
		a.wait(t, 30*time.Second)
	}

	rep := readReport(t, out)
	run := rep.Results[0].Runs[0]
	if run.Clients != nodes || run.FailedPulls != 0 || len(run.Agents) != k || rep.Options.Agents != k {
		t.Fatalf("%d nodes, %d failed (%s), %d agents", run.Clients, run.FailedPulls, run.FirstFailure, len(run.Agents))
	}
	var sum bench.Tally
	var pull, ttfb bench.Histogram
	images := make([]bench.Histogram, len(rep.Catalog.Images))
	for _, a := range run.Agents {
		sum.Nodes += a.Nodes
		sum.Bytes += a.Bytes
		sum.Requests += a.Requests
		sum.Errors += a.Errors
		sum.FailedPulls += a.FailedPulls
		pull.Merge(&a.Hist.Pull)
		ttfb.Merge(&a.Hist.TTFB)
		for i := range images {
			images[i].Merge(&a.Hist.Images[i])
		}
		if a.Nodes != nodes/k || a.Hist.Pull.Count() != int64(a.Nodes) {
			t.Errorf("agent %d played %d nodes (histogram %d), want %d", a.Agent, a.Nodes, a.Hist.Pull.Count(), nodes/k)
		}
	}
	if sum.Nodes != run.Clients || sum.Bytes != run.Bytes || sum.Requests != run.Requests || sum.Errors != run.Errors || sum.FailedPulls != run.FailedPulls {
		t.Errorf("the parts add up to %+v; the run: %d nodes, %d bytes, %d requests, %d errors", sum, run.Clients, run.Bytes, run.Requests, run.Errors)
	}
	if !slices.Equal(pull.Buckets(), run.Hist.Pull.Buckets()) || !slices.Equal(ttfb.Buckets(), run.Hist.TTFB.Buckets()) || ttfb.Count() != int64(run.TTFB.N) {
		t.Error("the run's histograms are not the bucket sums of the agents'")
	}
	for i := range images {
		if !slices.Equal(images[i].Buckets(), run.Hist.Images[i].Buckets()) || images[i].Count() != nodes {
			t.Errorf("image %d: merged histogram differs from the sum of the parts", i)
		}
	}
	var recordBytes int64
	for i, nr := range run.PerNode {
		recordBytes += nr.Bytes
		if nr.Node != i || nr.Agent != i%k {
			t.Errorf("record %d: node %d on agent %d", i, nr.Node, nr.Agent)
		}
	}
	if recordBytes != run.Bytes {
		t.Errorf("per-node bytes add up to %d, the run says %d", recordBytes, run.Bytes)
	}
	if u := run.Upstream; u.Source != "mar" || u.FetchesPerBlobMin != nodes || u.FetchesPerBlobMax != nodes {
		t.Errorf("the emulator counted %d-%d fetches per blob (%s), want %d", u.FetchesPerBlobMin, u.FetchesPerBlobMax, u.Source, nodes)
	}
	joined := agentJoinedLine.FindAllStringSubmatch(coord.stderr.String(), -1)
	if len(joined) != k {
		t.Fatalf("coordinator output: %s", coord.stderr)
	}
	from := map[string]bool{}
	for _, j := range joined {
		from[j[3]] = true
		if n.agent[0] != "" && !slices.Contains(n.agent, j[3]) {
			t.Errorf("%s joined from %s, not from an agent's namespace %v", j[2], j[3], n.agent)
		}
	}
	if n.agent[0] != "" && len(from) != k {
		t.Errorf("agents joined from %v, want %d namespaces", from, k)
	}
}
