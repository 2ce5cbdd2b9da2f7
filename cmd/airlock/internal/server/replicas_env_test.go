package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// localRepo is where the tests' rule puts the upstream's repositories.
const localRepo = "aks-managed-repository/"

// replicaSet is replicas of one cluster in this process, on one container,
// in front of one counting upstream.
type replicaSet struct {
	t         *testing.T
	az        *azuritetest.Server
	container string
	up        *upstreamtest.Upstream
	peers     []string
	lns       []net.Listener // reserved for replicas not started yet
	clock     *testClock
	rs        []*replica
	images    int // pushed by blobOwnedBy
}

// replica is one running server of a replicaSet.
type replica struct {
	srv    *Server
	addr   string
	cfg    *config.Config
	azure  *switchTransport
	stop   func() // graceful; waits until Serve returned
	served chan error
	logs   *logBuffer
}

// testClock is the replicas' engine clock: real time plus what a test adds.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// switchTransport is a replica's way to Azure: it counts the requests that
// write blobs and, while blocked, fails every request (a replica cut off
// from its storage).
type switchTransport struct {
	base    *http.Client
	blocked atomic.Bool
	mu      sync.Mutex
	writes  []string // "PUT <path>?comp=..." of requests under blobs/
}

func (s *switchTransport) Do(r *http.Request) (*http.Response, error) {
	if s.blocked.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("test: storage cut off")}
	}
	if r.Method == http.MethodPut && slices.Contains([]string{"", "blocklist"}, r.URL.Query().Get("comp")) {
		s.mu.Lock()
		s.writes = append(s.writes, r.URL.Path)
		s.mu.Unlock()
	}
	return s.base.Do(r)
}

// commits is how many blob writes (Put Blob, Put Block List) under the
// content store's prefix the replica sent for d.
func (s *switchTransport) commits(d digest.Digest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.writes {
		if len(p) > 0 && hasSuffix(p, "/blobs/"+d.Algorithm().String()+"/"+d.Encoded()) {
			n++
		}
	}
	return n
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// logBuffer keeps a replica's warnings and errors for a failed test.
type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *logBuffer) Sync() error { return nil }

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// newReplicaSet reserves n addresses and starts the replicas listed in
// start, each listing all n as peers, and waits until those see each
// other live (settle).
func newReplicaSet(t *testing.T, n int, start ...int) *replicaSet {
	t.Helper()
	s := &replicaSet{t: t, az: azuritetest.Shared(t), container: azuritetest.ContainerName("r"), up: upstreamtest.New(t), clock: &testClock{}}
	s.rs = make([]*replica, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		s.lns = append(s.lns, ln)
		s.peers = append(s.peers, ln.Addr().String())
	}
	for _, i := range start {
		s.start(i, nil)
	}
	if len(start) > 0 {
		s.settle(start...)
	}
	return s
}

// config is replica i's configuration: the azure driver on the set's
// container, cluster peers (all of them unless given), the rule mapping
// aks-managed-repository/* to the upstream.
func (s *replicaSet) config(i int, peers []string) *config.Config {
	if peers == nil {
		peers = s.peers
	}
	az := azuretest.Config(s.az, s.container)
	cfg := &config.Config{
		Listen:    s.peers[i],
		Storage:   config.Storage{Dir: s.t.TempDir(), Driver: config.DriverAzure, Azure: &az},
		Cluster:   cluster.Config{Self: s.peers[i], Peers: peers},
		Upstreams: []config.Upstream{{Host: "mcr.microsoft.com", Endpoint: s.up.URL()}},
		Rules:     []rules.Rule{{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: localRepo + "*"}},
		Log:       config.Log{Level: "warn", Format: "json"},
	}
	return cfg
}

// start runs replica i with cfg (nil: config(i, nil)) and waits until it
// is ready.
func (s *replicaSet) start(i int, cfg *config.Config) *replica {
	s.t.Helper()
	if cfg == nil {
		cfg = s.config(i, nil)
	}
	ln := s.lns[i]
	s.lns[i] = nil
	r := runReplica(s.t, fmt.Sprint("r", i), cfg, ln, s.az.HTTPClient, WithClock(s.clock.now))
	r.waitReady(s.t)
	s.rs[i] = r
	return r
}

// runReplica serves cfg on ln (nil: cfg.Listen) until the test ends,
// reaching Azure through client; it does not wait until it is ready.
func runReplica(t *testing.T, name string, cfg *config.Config, ln net.Listener, client *http.Client, opts ...Option) *replica {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &replica{addr: cfg.Listen, cfg: cfg, azure: &switchTransport{base: client}, logs: &logBuffer{}, served: make(chan error, 1)}
	level := zap.WarnLevel
	if os.Getenv("AIRLOCK_TEST_LOG") == "info" { // AIRLOCK_TEST_LOG=info: more of a failed test's story
		level = zap.InfoLevel
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), r.logs, level)).Named(name)
	if ln == nil { // started before: its address again
		var err error
		if ln, err = net.Listen("tcp", r.addr); err != nil {
			t.Fatal(err)
		}
	}
	opts = append([]Option{WithListener(ln),
		WithAzureOptions(azure.WithTransport(r.azure)),
		WithClusterOptions(cluster.WithMembershipOptions(cluster.WithProbeInterval(time.Second)))}, opts...)
	srv, err := New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.served <- srv.Serve(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-r.served; err != nil {
				t.Errorf("replica %s: %v", name, err)
			}
		})
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("replica %s (%s) logs:\n%s", name, r.addr, r.logs)
		}
	})
	return r
}

// waitReady waits until the replica is ready.
func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-r.srv.Ready():
	case err := <-r.served:
		r.served <- err // for stop
		t.Fatalf("replica %s stopped: %v", r.addr, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %s not ready after 30 s\n%s", r.addr, r.logs)
	}
}

// settle waits until each running replica of want sees exactly want live.
func (s *replicaSet) settle(want ...int) {
	s.t.Helper()
	var addrs []string
	for _, i := range want {
		addrs = append(addrs, s.peers[i])
	}
	slices.Sort(addrs)
	// Probes run every second; 30 s covers a host so loaded that Azurite
	// stops answering for a while (replicas then say they are not ready).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, i := range want {
			if !slices.Equal(s.rs[i].srv.node.Members.Live(), addrs) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, i := range want {
				s.t.Logf("replica %d sees %v", i, s.rs[i].srv.node.Members.Live())
			}
			s.t.Fatalf("replicas %v do not all see %v live", want, addrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// owner is the replica (index) owning key with replicas of live up.
func (s *replicaSet) owner(key string, live ...int) int {
	var addrs []string
	for _, i := range live {
		addrs = append(addrs, s.peers[i])
	}
	return slices.Index(s.peers, cluster.Owner(key, addrs))
}

// blobOwnedBy pushes images of one layer of size bytes until one's layer
// is owned by replica want among live, and returns its repository (local
// name), tag and layer digest.
func (s *replicaSet) blobOwnedBy(want int, size int64, live ...int) (repo string, layer digest.Digest) {
	s.t.Helper()
	for {
		s.images++
		name := fmt.Sprintf("team/app%d", s.images)
		img := s.up.PushImage(s.t, name+":v1", size, 1)
		ls, err := img.Layers()
		if err != nil {
			s.t.Fatal(err)
		}
		d, err := ls[0].Digest()
		if err != nil {
			s.t.Fatal(err)
		}
		if s.owner(d.String(), live...) == want {
			return localRepo + name, digest.Digest(d.String())
		}
	}
}

// url is replica i's base URL.
func (s *replicaSet) url(i int) string { return "http://" + s.peers[i] }

// metric is the sum of a counter or gauge of replica i.
func (s *replicaSet) metric(i int, name string, labels ...string) float64 {
	s.t.Helper()
	return promtest.Sum(s.t, s.rs[i].srv.prom, name, labels...)
}

// get sends GET url with the headers given and returns the status and body.
func get(t *testing.T, url string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, b, resp.Header
}
