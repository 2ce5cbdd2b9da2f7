package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/storage/azure"
)

// DefaultLeaseDuration is the fill record's lease when cluster.leaseDuration
// is not set: the shortest the service grants, so a dead holder's fill is
// taken over soonest.
const DefaultLeaseDuration = azure.MinLease

// Config is the cluster: section of airlock's configuration. The zero
// Config is a replica alone.
type Config struct {
	// Self is how peers reach this replica, host:port.
	Self string `yaml:"self"`
	// Peers lists every replica, this one included, as host:port; every
	// replica lists the same peers.
	Peers []string `yaml:"peers"`
	// PeersDNS is a headless Service's name and the replicas' port,
	// host:port: each A/AAAA record is a peer. Self must then be this
	// replica's IP:port (the address the others find in DNS).
	PeersDNS string `yaml:"peersDNS"`
	// LeaseDuration is the fill record's lease, 15s to 60s in whole
	// seconds (default 15s): how long a dead holder's fill waits at most
	// before another replica takes it over.
	LeaseDuration units.Duration `yaml:"leaseDuration"`
}

// Enabled reports whether any cluster setting is present.
func (c Config) Enabled() bool {
	return c.Self != "" || len(c.Peers) > 0 || c.PeersDNS != "" || c.LeaseDuration != 0
}

// Lease is the fill record's lease duration, the default when unset.
func (c Config) Lease() time.Duration {
	if c.LeaseDuration == 0 {
		return DefaultLeaseDuration
	}
	return time.Duration(c.LeaseDuration)
}

// Validate checks the settings without resolving or contacting anything.
// The zero Config is valid.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if err := validLease(c.Lease()); err != nil {
		return fmt.Errorf("cluster.leaseDuration %w", err)
	}
	if c.Self == "" {
		return errors.New("cluster.self is required: the host:port peers reach this replica at")
	}
	self, err := normAddr(c.Self)
	if err != nil {
		return fmt.Errorf("cluster.self: %w", err)
	}
	if len(c.Peers) > 0 && c.PeersDNS != "" {
		return errors.New("cluster: set either peers or peersDNS, not both")
	}
	if c.PeersDNS != "" {
		if _, err := normAddr(c.PeersDNS); err != nil {
			return fmt.Errorf("cluster.peersDNS: %w", err)
		}
		host, _, _ := net.SplitHostPort(self)
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("cluster.self %q: with peersDNS it must be this replica's IP:port, the address peers find in DNS (e.g. the pod IP)", c.Self)
		}
		return nil
	}
	if len(c.Peers) == 0 {
		return nil // a cluster of one
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		n, err := normAddr(p)
		if err != nil {
			return fmt.Errorf("cluster.peers[%d]: %w", i, err)
		}
		if seen[n] {
			return fmt.Errorf("cluster.peers[%d] %q is listed twice", i, p)
		}
		seen[n] = true
	}
	if !seen[self] {
		return fmt.Errorf("cluster.self %q is not in cluster.peers: every replica lists the same peers, itself included, so that all agree on who owns what", c.Self)
	}
	return nil
}

// validLease checks a fill record's lease against Azure's limits.
func validLease(d time.Duration) error {
	if d < azure.MinLease || d > azure.MaxLease || d%time.Second != 0 {
		return fmt.Errorf("%s: want whole seconds from %s to %s (Azure's lease limits)", d, azure.MinLease, azure.MaxLease)
	}
	return nil
}

// normAddr checks a host:port and returns it in one spelling: an IP in
// its canonical form (IPv4-mapped IPv6 as IPv4), a host name in lower case
// without a trailing dot, the port in decimal.
func normAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%q: want host:port", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("%q: an IPv6 zone cannot name a peer", s)
		}
		return net.JoinHostPort(ip.Unmap().String(), strconv.FormatUint(n, 10)), nil
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if !validHost(host) {
		return "", fmt.Errorf("%q: %q is not a host name or IP address", s, host)
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}

// validHost accepts DNS names: labels of letters, digits, hyphens and
// underscores, 1-63 long, 253 in all.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
