package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/units"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	peers := []string{"10.0.0.5:5000", "10.0.0.6:5000", "10.0.0.7:5000"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"off", Config{}, ""},
		{"issue example", Config{Self: "10.0.0.5:5000", Peers: peers, LeaseDuration: units.Duration(15 * time.Second)}, ""},
		{"dns", Config{Self: "10.0.0.5:5000", PeersDNS: "airlock-headless.airlock.svc:5000"}, ""},
		{"dns ipv6 self", Config{Self: "[fd00::5]:5000", PeersDNS: "airlock-headless:5000"}, ""},
		{"alone", Config{Self: "r1:5000"}, ""},
		{"self spelled otherwise", Config{Self: "R1.:5000", Peers: []string{"r1:5000", "r2:5000"}}, ""},
		{"lease 60s", Config{Self: "r1:5000", LeaseDuration: units.Duration(time.Minute)}, ""},
		{"no self", Config{Peers: peers}, "cluster.self is required"},
		{"lease only", Config{LeaseDuration: units.Duration(20 * time.Second)}, "cluster.self is required"},
		{"self without port", Config{Self: "10.0.0.5", Peers: peers}, "host:port"},
		{"port zero", Config{Self: "10.0.0.5:0"}, "port"},
		{"bad host", Config{Self: "a b:5000"}, "not a host name"},
		{"both", Config{Self: "10.0.0.5:5000", Peers: peers, PeersDNS: "h:5000"}, "not both"},
		{"self not listed", Config{Self: "10.0.0.9:5000", Peers: peers}, "not in cluster.peers"},
		{"peer twice", Config{Self: "10.0.0.5:5000", Peers: append(peers, "10.0.0.6:5000")}, "listed twice"},
		{"bad peer", Config{Self: "10.0.0.5:5000", Peers: []string{"10.0.0.5:5000", "x"}}, "cluster.peers[1]"},
		{"dns self name", Config{Self: "airlock-0:5000", PeersDNS: "h:5000"}, "IP:port"},
		{"dns without port", Config{Self: "10.0.0.5:5000", PeersDNS: "h"}, "cluster.peersDNS"},
		{"lease short", Config{Self: "r1:5000", LeaseDuration: units.Duration(10 * time.Second)}, "leaseDuration"},
		{"lease long", Config{Self: "r1:5000", LeaseDuration: units.Duration(61 * time.Second)}, "leaseDuration"},
		{"lease fraction", Config{Self: "r1:5000", LeaseDuration: units.Duration(15500 * time.Millisecond)}, "leaseDuration"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
	if got := (Config{Self: "r1:5000"}).Lease(); got != DefaultLeaseDuration {
		t.Errorf("default lease %s", got)
	}
	if _, err := NewFills(nil, a, &liveSet{}, 10*time.Second, zap.NewNop(), prometheus.NewRegistry()); err == nil {
		t.Error("NewFills took a 10 s lease")
	}
}

func TestNormAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.5:5000":          "10.0.0.5:5000",
		"[::ffff:10.0.0.5]:5000": "10.0.0.5:5000",
		"[FD00::0005]:05000":     "[fd00::5]:5000",
		"Airlock-0.Svc.:5000":    "airlock-0.svc:5000",
	} {
		if got, err := normAddr(in); err != nil || got != want {
			t.Errorf("normAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "h", "h:", "h:70000", "[fe80::1%eth0]:5000", "-h:1", "h..x:1"} {
		if got, err := normAddr(bad); err == nil {
			t.Errorf("normAddr(%q) = %q, want an error", bad, got)
		}
	}
}
