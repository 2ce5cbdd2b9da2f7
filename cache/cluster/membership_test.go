package cluster

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/internal/promtest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// fakeProber answers pings from a table: nil (up), an error, or hang
// until the probe's deadline.
type fakeProber struct {
	mu    sync.Mutex
	state map[string]error
	hang  map[string]bool
	pings map[string]int
}

var errDown = errors.New("connection refused")

func newFakeProber() *fakeProber {
	return &fakeProber{state: map[string]error{}, hang: map[string]bool{}, pings: map[string]int{}}
}

func (p *fakeProber) set(peer string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state[peer] = err
}

func (p *fakeProber) Ping(ctx context.Context, peer string) error {
	p.mu.Lock()
	p.pings[peer]++
	err, known := p.state[peer]
	hang := p.hang[peer]
	p.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if !known {
		return errDown
	}
	return err
}

func (p *fakeProber) count(peer string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pings[peer]
}

// fakeResolver answers LookupNetIP from a settable list.
type fakeResolver struct {
	mu    sync.Mutex
	addrs []netip.Addr
	err   error
	asked int
}

func (r *fakeResolver) set(err error, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err, r.addrs = err, nil
	for _, a := range addrs {
		r.addrs = append(r.addrs, netip.MustParseAddr(a))
	}
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	if network != "ip" || host != "airlock-headless.airlock.svc" {
		return nil, errors.New("unexpected lookup " + network + " " + host)
	}
	return slices.Clone(r.addrs), r.err
}

// running starts m.Run in the bubble; the returned func stops it and
// checks it returned ctx's error.
func running(t *testing.T, m *Membership, p Prober) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, p) }()
	synctest.Wait()
	return func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}
}

// drain returns the events received so far.
func drain(ch <-chan Event) []Event {
	var out []Event
	for {
		select {
		case e := <-ch:
			out = append(out, e)
		default:
			return out
		}
	}
}

func live(t *testing.T, m *Membership, want ...string) {
	t.Helper()
	if got := m.Live(); !slices.Equal(got, want) {
		t.Fatalf("live = %v, want %v", got, want)
	}
}

const (
	a = "10.0.0.5:5000"
	b = "10.0.0.6:5000"
	c = "10.0.0.7:5000"
)

func TestMembershipStaticLiveness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, err := NewMembership(Config{Self: a, Peers: []string{a, b, c}}, zaptest.NewLogger(t), reg)
		if err != nil {
			t.Fatal(err)
		}
		events, unsubscribe := m.Subscribe(32)
		defer unsubscribe()
		p := newFakeProber()
		p.set(b, nil)
		stop := running(t, m, p)
		defer stop()

		// One good probe makes b live; c never answered; self is not
		// live before it is ready.
		live(t, m, b)
		if m.IsLive(a) || !m.IsLive(b) || m.IsLive(c) || m.Owner("k") != b {
			t.Fatalf("IsLive a=%v b=%v c=%v owner=%s", m.IsLive(a), m.IsLive(b), m.IsLive(c), m.Owner("k"))
		}
		m.SetReady(true)
		live(t, m, a, b)
		if p.count(a) != 0 {
			t.Fatal("a replica probed itself")
		}

		// c comes up: live after the next probe, 2 s later.
		p.set(c, nil)
		time.Sleep(DefaultProbeInterval)
		synctest.Wait()
		live(t, m, a, b, c)
		if got := promtest.Sum(t, reg, "airlock_cluster_peers", "state", "live"); got != 3 {
			t.Fatalf("live gauge %v", got)
		}

		// b fails: still live after two failed probes, dead after the third.
		p.set(b, errDown)
		for range DefaultFailures - 1 {
			time.Sleep(DefaultProbeInterval)
			synctest.Wait()
			live(t, m, a, b, c)
		}
		time.Sleep(DefaultProbeInterval)
		synctest.Wait()
		live(t, m, a, c)
		if got := promtest.Sum(t, reg, "airlock_cluster_peers", "state", "dead"); got != 1 {
			t.Fatalf("dead gauge %v", got)
		}

		// A refused relay to c makes it dead at once; it is back after
		// one good probe. Self and strangers cannot be marked down.
		m.MarkDown(c)
		m.MarkDown(a)
		m.MarkDown("10.9.9.9:5000")
		live(t, m, a)
		time.Sleep(DefaultProbeInterval)
		synctest.Wait()
		live(t, m, a, c)

		m.SetReady(false)
		live(t, m, c)

		want := []Event{
			{Peer: b, Kind: Up}, {Peer: a, Kind: Up}, {Peer: c, Kind: Up},
			{Peer: b, Kind: Down, Reason: errDown.Error()},
			{Peer: c, Kind: Down, Reason: "unreachable"}, {Peer: c, Kind: Up},
			{Peer: a, Kind: Down, Reason: "not ready"},
		}
		if got := drain(events); !slices.Equal(got, want) {
			t.Fatalf("events\n got %v\nwant %v", got, want)
		}
	})
}

// A peer that hangs is dead after the failures' worth of probe timeouts,
// and does not slow the probes of the others.
func TestMembershipHangingPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := NewMembership(Config{Self: a, Peers: []string{a, b, c}}, zaptest.NewLogger(t), prometheus.NewRegistry(),
			WithProbeInterval(time.Second), WithFailures(2))
		if err != nil {
			t.Fatal(err)
		}
		p := newFakeProber()
		p.set(b, nil)
		p.set(c, nil)
		stop := running(t, m, p)
		defer stop()
		live(t, m, b, c)

		p.mu.Lock()
		p.hang[c] = true
		p.mu.Unlock()
		start := time.Now()
		for m.IsLive(c) {
			time.Sleep(100 * time.Millisecond)
		}
		// Up to one interval to the next round, then two timed-out probes.
		if took := time.Since(start); took > 3*time.Second+100*time.Millisecond {
			t.Fatalf("a hanging peer took %s to be dead, want at most 3 s", took)
		}
		before := p.count(b)
		time.Sleep(5 * time.Second)
		if n := p.count(b) - before; n < 4 {
			t.Fatalf("b was probed %d times in 5 s beside a hanging peer", n)
		}
		live(t, m, b)
	})
}

func TestMembershipDNS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeResolver{}
		r.set(nil, "10.0.0.5", "10.0.0.6") // self and b
		m, err := NewMembership(Config{Self: a, PeersDNS: "airlock-headless.airlock.svc:5000"}, zaptest.NewLogger(t),
			prometheus.NewRegistry(), WithResolver(r))
		if err != nil {
			t.Fatal(err)
		}
		m.SetReady(true)
		events, unsubscribe := m.Subscribe(32)
		defer unsubscribe()
		p := newFakeProber()
		for _, x := range []string{b, c} {
			p.set(x, nil)
		}
		stop := running(t, m, p)
		defer stop()
		live(t, m, a, b)

		// c joins: found at the next resolution (5 s), live after its probe.
		r.set(nil, "10.0.0.7", "::ffff:10.0.0.6", "10.0.0.5")
		time.Sleep(DefaultResolveInterval + DefaultProbeInterval)
		synctest.Wait()
		live(t, m, a, b, c)

		// DNS fails: nobody leaves.
		r.set(errors.New("i/o timeout"))
		time.Sleep(2 * DefaultResolveInterval)
		synctest.Wait()
		live(t, m, a, b, c)

		// b leaves DNS: gone without a failed probe.
		r.set(nil, "10.0.0.5", "10.0.0.7")
		time.Sleep(2 * DefaultResolveInterval)
		synctest.Wait()
		live(t, m, a, c)
		if p.count(a) != 0 {
			t.Fatal("a replica probed itself")
		}
		want := []Event{{Peer: b, Kind: Joined}, {Peer: b, Kind: Up}, {Peer: c, Kind: Joined}, {Peer: c, Kind: Up}, {Peer: b, Kind: Left}}
		if got := drain(events); !slices.Equal(got, want) {
			t.Fatalf("events\n got %v\nwant %v", got, want)
		}
	})
}

// A subscriber that does not read misses events; membership never blocks.
func TestMembershipSlowSubscriber(t *testing.T) {
	t.Parallel()
	m, err := NewMembership(Config{Self: a}, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	events, unsubscribe := m.Subscribe(1)
	for range 5 {
		m.SetReady(true)
		m.SetReady(false)
	}
	if got := drain(events); len(got) != 1 || got[0] != (Event{Peer: a, Kind: Up}) {
		t.Fatalf("events %v", got)
	}
	unsubscribe()
	unsubscribe()
	m.SetReady(true)
	if got := drain(events); len(got) != 0 {
		t.Fatalf("events after unsubscribing: %v", got)
	}
}
