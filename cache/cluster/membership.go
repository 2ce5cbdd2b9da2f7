package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Liveness defaults.
const (
	DefaultProbeInterval   = 2 * time.Second
	DefaultResolveInterval = 5 * time.Second
	DefaultFailures        = 3
)

// Prober asks a peer whether it is up and ready; *Client is one.
type Prober interface {
	// Ping returns nil if peer answered its ping endpoint as ready.
	Ping(ctx context.Context, peer string) error
}

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// EventKind says what happened to a peer.
type EventKind string

// The membership events.
const (
	// Joined: a peer appeared in DNS; it is not live before a good probe.
	Joined EventKind = "joined"
	// Left: a peer is no longer in DNS.
	Left EventKind = "left"
	// Up: a peer answered a probe (or this replica became ready).
	Up EventKind = "up"
	// Down: a peer failed its probes, or a connection to it was refused,
	// or this replica is no longer ready.
	Down EventKind = "down"
)

// Event is one change of the membership.
type Event struct {
	Peer   string
	Kind   EventKind
	Reason string // why a peer went down; empty otherwise
}

// Option tunes a Membership.
type Option func(*Membership)

// WithResolver replaces net.DefaultResolver for cluster.peersDNS.
func WithResolver(r Resolver) Option { return func(m *Membership) { m.resolver = r } }

// WithProbeInterval sets how often peers are probed (and each probe's
// timeout); default 2 s.
func WithProbeInterval(d time.Duration) Option {
	return func(m *Membership) {
		if d > 0 {
			m.interval = d
		}
	}
}

// WithResolveInterval sets how often cluster.peersDNS is resolved again;
// default 5 s.
func WithResolveInterval(d time.Duration) Option {
	return func(m *Membership) {
		if d > 0 {
			m.resolveEvery = d
		}
	}
}

// WithFailures sets how many probes in a row must fail before a live peer
// is dead; default 3.
func WithFailures(n int) Option {
	return func(m *Membership) {
		if n > 0 {
			m.failures = n
		}
	}
}

// peerState is what a replica knows of one other replica.
type peerState struct {
	live  bool
	fails int // probes failed in a row
}

// Membership is one replica's view of the cluster: the peers, which are
// live, and which owns a key. It is safe for concurrent use; Run keeps it
// current.
type Membership struct {
	self         string
	dnsHost      string // cluster.peersDNS's host, "" with static peers
	dnsPort      string
	resolver     Resolver
	interval     time.Duration
	resolveEvery time.Duration
	failures     int
	log          *zap.Logger
	gauge        *prometheus.GaugeVec

	mu    sync.Mutex
	ready bool
	peers map[string]*peerState // the others
	live  []string              // sorted live view, self included while ready
	subs  map[chan Event]struct{}
}

// NewMembership returns the membership cfg describes (cfg must be valid
// and enabled): static peers are known at once, DNS peers once Run has
// resolved them; none is live before a good probe, and self is live once
// SetReady(true).
func NewMembership(cfg Config, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, fmt.Errorf("cluster: no cluster.self")
	}
	self, _ := normAddr(cfg.Self)
	m := &Membership{
		self:         self,
		resolver:     net.DefaultResolver,
		interval:     DefaultProbeInterval,
		resolveEvery: DefaultResolveInterval,
		failures:     DefaultFailures,
		log:          log,
		peers:        map[string]*peerState{},
		subs:         map[chan Event]struct{}{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_cluster_peers",
			Help: "Replicas of the cluster as this replica sees them, by state (live or dead), itself included.",
		}, []string{"state"}),
	}
	for _, o := range opts {
		o(m)
	}
	if err := reg.Register(m.gauge); err != nil {
		return nil, fmt.Errorf("cluster: metrics: %w", err)
	}
	if cfg.PeersDNS != "" {
		n, _ := normAddr(cfg.PeersDNS)
		m.dnsHost, m.dnsPort, _ = net.SplitHostPort(n)
	}
	for _, p := range cfg.Peers {
		if n, _ := normAddr(p); n != self {
			m.peers[n] = &peerState{}
		}
	}
	m.mu.Lock()
	m.changed()
	m.mu.Unlock()
	return m, nil
}

// Self is this replica's address, as peers know it.
func (m *Membership) Self() string { return m.self }

// SetReady says whether this replica serves requests: it is live in its
// own view only while ready. Its ping endpoint answers the same.
func (m *Membership) SetReady(ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ready == ready {
		return
	}
	m.ready = ready
	if ready {
		m.emit(Event{Peer: m.self, Kind: Up})
	} else {
		m.emit(Event{Peer: m.self, Kind: Down, Reason: "not ready"})
	}
	m.changed()
}

// Ready reports what SetReady last said.
func (m *Membership) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

// Live returns the live replicas in lexical order, self included while
// ready. The slice is the caller's.
func (m *Membership) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.live)
}

// IsLive reports whether peer (host:port) is live in this view.
func (m *Membership) IsLive(peer string) bool {
	n, err := normAddr(peer)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == m.self {
		return m.ready
	}
	p := m.peers[n]
	return p != nil && p.live
}

// Owner returns the live replica that owns key (see the package doc), or
// "" when none is live (this replica is not ready and no peer answers).
func (m *Membership) Owner(key string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Owner(key, m.live)
}

// MarkDown makes peer dead at once, e.g. because a connection to it was
// refused; it is live again after its next good probe. Self and unknown
// addresses are ignored.
func (m *Membership) MarkDown(peer string) {
	n, err := normAddr(peer)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[n]
	if p == nil {
		return
	}
	p.fails = max(p.fails, m.failures)
	if p.live {
		p.live = false
		m.emit(Event{Peer: n, Kind: Down, Reason: "unreachable"})
		m.changed()
	}
}

// Subscribe returns a channel of membership changes with room for buf
// events, and the function that ends the subscription. A subscriber that
// falls more than buf behind misses events; every change is also logged.
func (m *Membership) Subscribe(buf int) (<-chan Event, func()) {
	ch := make(chan Event, max(buf, 1))
	m.mu.Lock()
	m.subs[ch] = struct{}{}
	m.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, ch)
			m.mu.Unlock()
		})
	}
}

// emit logs e and offers it to the subscribers. m.mu is held.
func (m *Membership) emit(e Event) {
	fields := []zap.Field{zap.String("peer", e.Peer), zap.String("event", string(e.Kind))}
	if e.Reason != "" {
		fields = append(fields, zap.String("reason", e.Reason))
	}
	if e.Kind == Down || e.Kind == Left {
		m.log.Warn("cluster membership changed", fields...)
	} else {
		m.log.Info("cluster membership changed", fields...)
	}
	for ch := range m.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// changed recomputes the live view and the gauge. m.mu is held.
func (m *Membership) changed() {
	live := make([]string, 0, len(m.peers)+1)
	if m.ready {
		live = append(live, m.self)
	}
	for n, p := range m.peers {
		if p.live {
			live = append(live, n)
		}
	}
	slices.Sort(live)
	m.live = live
	m.gauge.WithLabelValues("live").Set(float64(len(live)))
	m.gauge.WithLabelValues("dead").Set(float64(len(m.peers) + 1 - len(live)))
}
