package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

var coordinatorAddr = regexp.MustCompile(`coordinator on (\S+):`)

// distributed runs a registry run on k in-process agents, each given by
// agentOpts(i), and returns the report and the agents' errors.
func distributed(t *testing.T, opts Options, k int, agentOpts func(i int) AgentOptions) (*Report, []error, error) {
	t.Helper()
	opts.Agents, opts.Listen, opts.WaitAgents = k, "127.0.0.1:0", 30*time.Second
	opts.Keychain, opts.Out, opts.RunTimeout = authn.NewMultiKeychain(), t.TempDir(), time.Minute
	var wg sync.WaitGroup
	agentErrs := make([]error, k)
	var once sync.Once
	t0 := time.Now()
	opts.Progress = func(step, steps int, what string) { t.Logf("%v step %d/%d %s", time.Since(t0), step+1, steps, what) }
	opts.Notice = func(msg string) {
		t.Logf("%v %s", time.Since(t0), msg)
		m := coordinatorAddr.FindStringSubmatch(msg)
		if m == nil {
			return
		}
		once.Do(func() {
			for i := range k {
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := agentOpts(i)
					o.Coordinator, o.Name, o.Keychain = "http://"+m[1], fmt.Sprintf("agent-%d", i), authn.NewMultiKeychain()
					agentErrs[i] = RunAgent(t.Context(), o)
				}()
			}
		})
	}
	rep, err := RunRegistries(t.Context(), opts)
	wg.Wait()
	return rep, agentErrs, err
}

// Three agents play a storm of 7 nodes and a rolling event: the merged run
// is the sum of the parts (counts, bytes, histogram buckets), every node
// is played once, by agent i % 3, and the emulator saw each node fetch
// each blob.
func TestCoordinatorMergesAgents(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	for _, arr := range []Arrival{{Kind: ArrivalStorm}, {Kind: ArrivalRolling, Surge: 2}} {
		rep, agentErrs, err := distributed(t, Options{Registries: []string{m.URL()}, Nodes: 7, Runs: 1, Arrival: arr}, 3,
			func(int) AgentOptions { return AgentOptions{Index: -1} })
		if err != nil || errors.Join(agentErrs...) != nil {
			t.Fatalf("%s: %v; agents: %v", arr, err, agentErrs)
		}
		run := rep.Results[0].Runs[0]
		if run.FailedPulls != 0 || len(run.Agents) != 3 || len(run.PerNode) != 7 || rep.Options.Agents != 3 {
			t.Fatalf("%s: %d failed (%s), %d agents, %d nodes", arr, run.FailedPulls, run.FirstFailure, len(run.Agents), len(run.PerNode))
		}
		var sum Tally
		var hist Hists
		for _, a := range run.Agents {
			sum.merge(a.Tally)
			hist.merge(&a.Hist)
			if !strings.HasPrefix(a.Name, "agent-") || a.Nodes != len((&event{nodes: 7, agent: a.Agent, agents: 3}).slice()) {
				t.Errorf("%s: agent part %d (%s) has %d nodes", arr, a.Agent, a.Name, a.Nodes)
			}
		}
		if sum.Nodes != 7 || sum.Bytes != run.Bytes || sum.Requests != run.Requests || sum.Errors != run.Errors {
			t.Errorf("%s: parts add up to %+v, the run says %d bytes, %d requests", arr, sum, run.Bytes, run.Requests)
		}
		if !slices.Equal(hist.TTFB.Buckets(), run.Hist.TTFB.Buckets()) || !slices.Equal(hist.Pull.Buckets(), run.Hist.Pull.Buckets()) ||
			run.Hist.Pull.Count() != 7 || run.TTFB.N != int(run.Hist.TTFB.Count()) {
			t.Errorf("%s: merged histograms are not the sum of the parts", arr)
		}
		for i, n := range run.PerNode {
			if n.Node != i || n.Agent != i%3 {
				t.Errorf("%s: record %d is node %d of agent %d", arr, i, n.Node, n.Agent)
			}
		}
		if u := run.Upstream; u.FetchesPerBlobMin != 7 || u.FetchesPerBlobMax != 7 {
			t.Errorf("%s: the emulator saw %d-%d fetches per blob, want 7", arr, u.FetchesPerBlobMin, u.FetchesPerBlobMax)
		}
		if arr.Kind == ArrivalRolling {
			// Batches span agents: batch b+1 starts after all of batch b
			// ended (clocks agree here, up to the offset estimate).
			end := map[int]float64{}
			for _, n := range run.PerNode {
				end[n.Node/2] = max(end[n.Node/2], n.StartS+n.PullS)
			}
			for _, n := range run.PerNode {
				if b := n.Node / 2; b > 0 && n.StartS < end[b-1]-0.005 {
					t.Errorf("node %d of batch %d started at %.3f s, before batch %d ended at %.3f s", n.Node, b, n.StartS, b-1, end[b-1])
				}
			}
		}
	}
}

// An agent that cannot get ready calls the run off: the coordinator and
// the other agents stop with its reason, and no load is played.
func TestCoordinatorAbortsOnAgentFailure(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	missingCA := filepath.Join(t.TempDir(), "missing.pem")
	rep, agentErrs, err := distributed(t, Options{Registries: []string{m.URL()}, Nodes: 4, Runs: 1}, 2, func(i int) AgentOptions {
		if i == 1 {
			return AgentOptions{Index: -1, Auth: AuthOptions{CA: missingCA}}
		}
		return AgentOptions{Index: -1}
	})
	if rep != nil || err == nil || !strings.Contains(err.Error(), "agent-1") || !strings.Contains(err.Error(), "--ca") {
		t.Fatalf("coordinator: %v", err)
	}
	for i, e := range agentErrs {
		if e == nil {
			t.Errorf("agent %d ended without an error", i)
		}
	}
	if n := m.Stats().Sum(marBlobData).Count; n != 0 {
		t.Errorf("%d blob fetches after the run was called off", n)
	}
}

// A coordinator nobody joins gives up after --wait-agents, saying so.
func TestCoordinatorWaitsForAgents(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	opts := Options{Registries: []string{m.URL()}, Nodes: 2, Agents: 2, Listen: "127.0.0.1:0", WaitAgents: 200 * time.Millisecond,
		Keychain: authn.NewMultiKeychain()}
	_, err := RunRegistries(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "only 0 of 2 agents connected") {
		t.Fatalf("%v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := RunAgent(ctx, AgentOptions{Coordinator: "127.0.0.1:1"}); !errors.Is(err, ErrUsage) {
		t.Fatalf("agent with a bad URL: %v", err)
	}
}
