package cluster

import (
	"context"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Run keeps the view current until ctx is done, then returns ctx's error:
// it resolves cluster.peersDNS at once and every resolve interval, and
// probes every other peer with p at once and every probe interval, each
// probe bounded by the interval. A failed resolution keeps the peers
// known so far.
func (m *Membership) Run(ctx context.Context, p Prober) error {
	fields := []zap.Field{zap.String("self", m.self), zap.Strings("peers", m.others())}
	if m.dnsHost != "" {
		fields = append(fields, zap.String("peersDNS", net.JoinHostPort(m.dnsHost, m.dnsPort)))
	}
	m.log.Info("cluster membership starting", fields...)
	var resolved time.Time
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if m.dnsHost != "" && (resolved.IsZero() || time.Since(resolved) >= m.resolveEvery) {
			m.resolve(ctx)
			resolved = time.Now()
		}
		m.probeAll(ctx, p)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// others lists the peers but self, sorted.
func (m *Membership) others() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.peers))
}

// resolve replaces the peers with cluster.peersDNS's records: new ones
// join (not live before a good probe), missing ones leave.
func (m *Membership) resolve(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, m.interval)
	addrs, err := m.resolver.LookupNetIP(rctx, "ip", m.dnsHost)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cluster peersDNS lookup failed; keeping the peers known", zap.String("name", m.dnsHost), zap.Error(err))
		}
		return
	}
	found := map[string]bool{}
	for _, a := range addrs {
		n := net.JoinHostPort(a.Unmap().WithZone("").String(), m.dnsPort)
		if n != m.self {
			found[n] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for n := range m.peers {
		if !found[n] {
			delete(m.peers, n)
			m.emit(Event{Peer: n, Kind: Left})
			changed = true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(found)) {
		if m.peers[n] == nil {
			m.peers[n] = &peerState{}
			m.emit(Event{Peer: n, Kind: Joined})
			changed = true
		}
	}
	if changed {
		m.changed()
	}
}

// probeAll pings every other peer at once and waits for the answers.
func (m *Membership) probeAll(ctx context.Context, p Prober) {
	var wg sync.WaitGroup
	for _, n := range m.others() {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, m.interval)
			err := p.Ping(pctx, n)
			cancel()
			if ctx.Err() == nil {
				m.observe(n, err)
			}
		})
	}
	wg.Wait()
}

// observe applies one probe's outcome to peer n.
func (m *Membership) observe(n string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[n]
	if p == nil {
		return // left meanwhile
	}
	if err == nil {
		p.fails = 0
		if !p.live {
			p.live = true
			m.emit(Event{Peer: n, Kind: Up})
			m.changed()
		}
		return
	}
	p.fails++
	if p.live && p.fails >= m.failures {
		p.live = false
		m.emit(Event{Peer: n, Kind: Down, Reason: err.Error()})
		m.changed()
	}
}
