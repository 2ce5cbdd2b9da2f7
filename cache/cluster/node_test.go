package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/polltest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// liveNode is one replica of testThreeNodes: its node, its HTTP server
// and its membership loop.
type liveNode struct {
	*Node
	srv  *http.Server
	stop func()
}

// startNode runs replica i of peers on its own client of the shared
// container, serving a registry whose one blob names the replica.
func startNode(t *testing.T, e *azEnv, container string, ln net.Listener, peers []string) *liveNode {
	t.Helper()
	self := ln.Addr().String()
	ctr := e.open(t, container)
	n, err := NewNode(Config{Self: self, Peers: peers}, ctr, azKeys(t, ctr),
		zaptest.NewLogger(t).Named(self), prometheus.NewRegistry(),
		WithMembershipOptions(WithProbeInterval(500*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.LoadKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err := n.Handler(&fakeRegistry{blob: []byte("served by " + self)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	n.Members.SetReady(true)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		n.Run(ctx)
	}()
	var once sync.Once
	ln2 := &liveNode{Node: n, srv: srv}
	ln2.stop = func() {
		once.Do(func() {
			cancel()
			<-ran
			srv.Close()
			<-served
		})
	}
	t.Cleanup(ln2.stop)
	return ln2
}

func sees(ns []*liveNode, want ...string) func() bool {
	want = slices.Sorted(slices.Values(want))
	return func() bool {
		for _, n := range ns {
			if !slices.Equal(n.Members.Live(), want) {
				return false
			}
		}
		return true
	}
}

// agreed returns the owner of every key if the replicas agree on all.
func agreed(ns []*liveNode, ks []string) ([]string, bool) {
	first := make([]string, len(ks))
	for i, k := range ks {
		first[i] = ns[0].Members.Owner(k)
		for _, n := range ns[1:] {
			if n.Members.Owner(k) != first[i] {
				return nil, false
			}
		}
	}
	return first, true
}

// settled waits until every replica of ns sees exactly want live and all
// agree on the owners of ks, and returns the owners.
func settled(t *testing.T, what string, ns []*liveNode, ks []string, want ...string) []string {
	t.Helper()
	var out []string
	polltest.Until(t, 10*time.Second, what, func() bool {
		if !sees(ns, want...)() {
			return false
		}
		o, ok := agreed(ns, ks)
		out = o
		return ok
	})
	return out
}

// Three replicas on one store find each other with the key they share,
// agree on owners and relay; one leaves and comes back without the others
// restarting.
func testThreeNodes(t *testing.T, e *azEnv) {
	container := e.container()
	var lns []net.Listener
	var peers []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		peers = append(peers, ln.Addr().String())
	}
	var ns []*liveNode
	for _, ln := range lns {
		ns = append(ns, startNode(t, e, container, ln, peers))
	}
	ks := keys()[:1000]
	before := settled(t, "every replica sees all three live", ns, ks, peers...)

	// Replica 0 relays a key replica 1 owns from it.
	i := slices.Index(before, peers[1])
	resp, err := ns[0].Client.Relay(t.Context(), before[i], http.MethodGet, "/v2/a/blobs/"+ks[i], 0)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "served by "+peers[1] {
		t.Fatalf("relay got %q", body)
	}

	// Replica 2 goes away: a relay to it is refused and marks it down at
	// once; replica 1 finds out by its probes. Its keys move, only them.
	events, unsubscribe := ns[0].Members.Subscribe(16)
	defer unsubscribe()
	ns[2].stop()
	if _, err := ns[0].Client.Relay(t.Context(), peers[2], http.MethodGet, "/v2/a/blobs/"+ks[0], 0); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("relay to a stopped replica: %v", err)
	}
	if !slices.Contains(drain(events), Event{Peer: peers[2], Kind: Down, Reason: "unreachable"}) {
		t.Fatal("a refused relay did not mark the replica down")
	}
	after := settled(t, "the two left see each other only", ns[:2], ks, peers[:2]...)
	for j := range ks {
		if after[j] != before[j] && before[j] != peers[2] {
			t.Fatalf("key %s moved from %s, which stayed", ks[j], before[j])
		}
	}

	// It comes back at the same address: nobody restarts.
	ln, err := net.Listen("tcp", peers[2])
	if err != nil {
		t.Fatal(err)
	}
	ns[2] = startNode(t, e, container, ln, peers)
	if back := settled(t, "all three live again", ns, ks, peers...); !slices.Equal(back, before) {
		t.Fatal("owners differ from before the replica left")
	}
}

// Replicas whose views differ (here: B lists only itself) still fill a
// blob once: B does not know A, but A answers, so B relays from A's claim
// instead of breaking it; once A is gone for good, B takes over.
func testDisagreeingViews(t *testing.T, e *azEnv) {
	container := e.container()
	la, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := la.Addr().String(), lb.Addr().String()
	na := startNode(t, e, container, la, []string{a, b})
	nb := startNode(t, e, container, lb, []string{b})
	ctx := t.Context()
	d := dgst("disagreeing views")
	claim, holder, err := na.Fills.ClaimFill(ctx, d)
	if err != nil || claim == nil {
		t.Fatalf("A's claim: %v %q %v", claim, holder, err)
	}
	defer claim.Release(context.Background())
	if nb.Members.IsLive(a) {
		t.Fatal("B's view knows A")
	}
	got, holder, err := nb.Fills.ClaimFill(ctx, d)
	if err != nil || got != nil || holder != a {
		t.Fatalf("B claimed %v (holder %q, %v); want to relay from A", got, holder, err)
	}
	na.stop()
	got, _, err = nb.Fills.ClaimFill(ctx, d)
	if err != nil || got == nil {
		t.Fatalf("B after A stopped: %v %v; want a takeover", got, err)
	}
	defer got.Release(ctx)
	if prev, ok := got.Takeover(); !ok || prev.Holder != a {
		t.Fatalf("takeover of %+v %v, want A's record", prev, ok)
	}
}
