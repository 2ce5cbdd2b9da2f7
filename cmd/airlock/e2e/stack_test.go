package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/proctest"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// mirrorRepo is the repository namespace of the aks-managed-mcr rule.
const mirrorRepo = deploy.MirrorRepository

// statAirlock stats the airlock binary from within a test, so that go
// test's result cache is invalidated when the binary changes.
func statAirlock(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(airlockBin); err != nil {
		t.Fatal(err)
	}
}

// marServer is a running `airlock mar`.
type marServer struct {
	*proctest.Proc
	ns   string
	url  string // registry base URL
	data string // data (CDN) listener host:port
}

var reMarReady = regexp.MustCompile(`airlock mar: registry (http://\S+) data http://(\S+) `)

// startMar runs the MAR emulator (seed 1, its own layer cache) in network
// namespace ns ("" for the host's), listening on the given addresses.
func startMar(t *testing.T, ns, listen, dataListen string, args ...string) *marServer {
	t.Helper()
	statAirlock(t)
	argv := labnode.InNetns(ns, airlockBin, "mar", "--listen", listen, "--data-listen", dataListen,
		"--seed", "1", "--cache-dir", t.TempDir(), "--log-level", "warn")
	p := startProc(t, "airlock mar", nil, append(argv, args...)...)
	m := p.WaitOutput(t, reMarReady, 60*time.Second)
	return &marServer{Proc: p, ns: ns, url: m[1], data: m[2]}
}

// get requests the emulator's control API from the emulator's namespace.
func (m *marServer) get(t *testing.T, ctx context.Context, method, path string) []byte {
	t.Helper()
	body, err := nsHTTP(ctx, m.ns, method, m.url+path)
	if err != nil {
		t.Fatalf("mar %s %s: %v", method, path, err)
	}
	return body
}

// stats returns the emulator's request counters.
func (m *marServer) stats(t *testing.T, ctx context.Context) mar.Stats {
	t.Helper()
	var s mar.Stats
	if err := json.Unmarshal(m.get(t, ctx, http.MethodGet, "/_mar/stats"), &s); err != nil {
		t.Fatalf("mar stats: %v", err)
	}
	return s
}

func (m *marServer) resetStats(t *testing.T, ctx context.Context) {
	t.Helper()
	m.get(t, ctx, http.MethodPost, "/_mar/stats/reset")
}

// images returns the emulator's catalog as it serves it (GET /_mar/images).
func (m *marServer) images(t *testing.T, ctx context.Context) map[string]catalog.Image {
	t.Helper()
	var imgs []catalog.Image
	if err := json.Unmarshal(m.get(t, ctx, http.MethodGet, "/_mar/images"), &imgs); err != nil {
		t.Fatalf("mar images: %v", err)
	}
	out := make(map[string]catalog.Image, len(imgs))
	for _, i := range imgs {
		out[i.Ref().String()] = i
	}
	return out
}

// nsHTTP makes one request from network namespace ns: in this process for
// the host's namespace, else through the test binary's helper mode.
func nsHTTP(ctx context.Context, ns, method, url string) ([]byte, error) {
	if ns == "" {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return nil, err
		}
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return b, fmt.Errorf("%s %s: %s", method, url, resp.Status)
		}
		return b, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	out, err := runCmd(ctx, 20*time.Second, []string{envHelperURL + "=" + url, envHelperMethod + "=" + method}, labnode.InNetns(ns, self)...)
	return []byte(out), err
}

// airlockServer is a running `airlock serve`.
type airlockServer struct {
	*proctest.Proc
	ns   string
	url  string // http://host:port
	host string // host:port
	seen int    // requests logged before the scenario running now (pullPath.mark)
}

var reServing = regexp.MustCompile(`airlock: serving on (https?)://(\S+) `)

// startAirlock runs airlock serve in namespace ns, on listen, with
// mcr.microsoft.com pointed at upstream (the emulator: never the real MAR)
// and the rest of the configuration in extra (YAML).
func startAirlock(t *testing.T, ns, listen, upstream, extra string) *airlockServer {
	t.Helper()
	cfg := fmt.Sprintf("listen: %s\nstorage:\n  dir: %s\nupstreams:\n  - host: mcr.microsoft.com\n    endpoint: %s\nlog:\n  level: info\n%s",
		listen, filepath.Join(t.TempDir(), "data"), upstream, extra)
	return startAirlockConfig(t, ns, cfg)
}

// startAirlockConfig runs airlock serve in namespace ns with the
// configuration cfg (YAML).
func startAirlockConfig(t *testing.T, ns, cfg string) *airlockServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "airlock serve", nil, labnode.InNetns(ns, airlockBin, "serve", "--config", path)...)
	m := p.WaitOutput(t, reServing, 60*time.Second)
	return &airlockServer{Proc: p, ns: ns, url: m[1] + "://" + m[2], host: m[2]}
}

// request is one line of airlock's request log (level info, JSON).
type request struct {
	Msg    string `json:"msg"`
	Method string `json:"method"`
	Path   string `json:"path"`
	NS     string `json:"ns"`
	Status int    `json:"status"`
	UA     string `json:"ua"`
}

// requests returns the requests airlock has logged so far, since the
// scenario running now began (pullPath.mark).
func (a *airlockServer) requests() []request {
	var out []request
	for _, line := range strings.Split(a.Stdout.String()+a.Stderr.String(), "\n") {
		var r request
		if json.Unmarshal([]byte(line), &r) == nil && r.Msg == "request" {
			out = append(out, r)
		}
	}
	return out[min(a.seen, len(out)):]
}

// mirrorRequests checks that every registry request from a client whose
// user agent contains ua went through the mirror path of hosts.toml
// (/v2/aks-managed-repository/...) with ?ns=mcr.microsoft.com, and that
// none failed; it returns how many there were.
func (a *airlockServer) mirrorRequests(t *testing.T, ua string) int {
	t.Helper()
	n := 0
	for _, r := range a.requests() {
		if !strings.Contains(r.UA, ua) || !strings.HasPrefix(r.Path, "/v2/") || r.Path == "/v2/" {
			continue
		}
		n++
		if r.NS != "mcr.microsoft.com" || !strings.HasPrefix(r.Path, "/v2/"+mirrorRepo+"/") || r.Status/100 != 2 {
			t.Errorf("%s: %s request %s %s ns=%q: %d", a.url, ua, r.Method, r.Path, r.NS, r.Status)
		}
	}
	return n
}

// ruleYAML is the rule AKS creates, for tests that do not go through the
// control module.
const ruleYAML = "rules:\n  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*}\n"

// cli runs `airlock <args> --server <this server>` from the server's
// namespace and returns stdout.
func (a *airlockServer) cli(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	argv := append(append([]string{airlockBin}, args...), "--server", a.url)
	return mustRun(t, ctx, 30*time.Second, labnode.InNetns(a.ns, argv...)...)
}

// nodeConfig is what `airlock cluster nodeconfig` wrote for a node: under
// dir, containerd/config-path-v3.toml (the containerd 2.x config_path
// snippet) and certs (certs.d, that config_path: ctr --hosts-dir) with
// mcr.microsoft.com/hosts.toml pointing at registry.
type nodeConfig struct {
	dir, certs string
	registry   string // the airlock base URL hosts.toml names
}

// v3Snippet is the containerd 2.x configuration snippet nodeconfig wrote.
func (n nodeConfig) v3Snippet() string {
	return filepath.Join(n.dir, filepath.FromSlash(deploy.ContainerdV3Path))
}

// pullPath is what nodes pull through: one airlock, or several (the
// replicas of a cluster), each with the node configuration that points at
// it. Node i uses configs[i % len], so nodes spread over the airlocks
// round-robin; the checks on airlock's side sum over all of them.
type pullPath struct {
	airlocks []*airlockServer
	configs  []nodeConfig
}

// provisionPath creates, with control's control module, a network-isolated
// cluster whose AKS-managed registry is control (which adds the
// aks-managed-mcr rule), and writes with `cluster nodeconfig` one node
// configuration per airlock of through: the first as nodeconfig writes it
// for control's private endpoint when it is control, the others with
// --registry-host naming that airlock. hosts.toml's fallback server is a
// port nothing listens on, so a failure of the mirror shows instead of
// being hidden.
func provisionPath(t *testing.T, ctx context.Context, control *airlockServer, cluster string, through ...*airlockServer) pullPath {
	t.Helper()
	var c deploy.ClusterInfo
	out := control.cli(t, ctx, "cluster", "create", "--name", cluster, "--network-isolated", "--kubernetes-version", "1.31.3")
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("cluster create: %v\n%s", err, out)
	}
	if !c.NetworkIsolated || c.BootstrapRegistry == nil || !c.BootstrapRegistry.Served || c.BootstrapRegistry.Endpoint != control.url {
		t.Fatalf("cluster %s does not bootstrap from this airlock (%s): %s", cluster, control.url, out)
	}
	fallback := "http://" + upstreamtest.Unreachable(t)
	p := pullPath{airlocks: through}
	for _, a := range through {
		dir := t.TempDir()
		n := nodeConfig{dir: dir, certs: filepath.Join(dir, "certs.d"), registry: a.url}
		args := []string{"cluster", "nodeconfig", "--name", cluster, "--out", dir, "--fallback-server", fallback, "--certs-dir", n.certs}
		if a != control {
			args = append(args, "--registry-host", a.host)
		}
		control.cli(t, ctx, args...)
		hosts, err := os.ReadFile(filepath.Join(n.certs, "mcr.microsoft.com", "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			fmt.Sprintf("server = %q", fallback),
			fmt.Sprintf("[host.%q]", a.url+"/v2/"+mirrorRepo),
			"override_path = true",
		} {
			if !strings.Contains(string(hosts), want) {
				t.Fatalf("hosts.toml lacks %s:\n%s", want, hosts)
			}
		}
		p.configs = append(p.configs, n)
	}
	return p
}

// node returns the configuration of node i.
func (p pullPath) node(i int) nodeConfig { return p.configs[i%len(p.configs)] }

// checkMirrorRequests checks the registry requests of clients whose user
// agent contains ua on every airlock of the path (mirrorRequests), and that
// there were some; it returns how many.
func (p pullPath) checkMirrorRequests(t *testing.T, ua string) int {
	t.Helper()
	n := 0
	for _, a := range p.airlocks {
		n += a.mirrorRequests(t, ua)
	}
	if n == 0 {
		t.Errorf("no airlock logged a request from %s", ua)
	}
	return n
}

// metric sums a metric (airlockServer.metric) over the path's airlocks.
func (p pullPath) metric(t *testing.T, ctx context.Context, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, a := range p.airlocks {
		sum += a.metric(t, ctx, name, labels...)
	}
	return sum
}

// mark begins a scenario on p: from now on the airlocks' requests are the
// scenario's (a path may serve several scenarios in turn).
func (p pullPath) mark() {
	for _, a := range p.airlocks {
		a.seen += len(a.requests())
	}
}

// requests returns the requests every airlock of the path has logged in
// the scenario running now.
func (p pullPath) requests() []request {
	var out []request
	for _, a := range p.airlocks {
		out = append(out, a.requests()...)
	}
	return out
}

// platformBlobs returns the config and layer digests of one platform of img
// ("linux/amd64"; any for a single-manifest artifact).
func platformBlobs(t *testing.T, img catalog.Image, osArch string) (v1.Hash, []v1.Hash) {
	t.Helper()
	pm, ok := img.Platform(osArch)
	if !ok {
		t.Fatalf("%s has no %s manifest", img.Ref(), osArch)
	}
	blobs := []v1.Hash{pm.Config.Digest}
	for _, l := range pm.Layers {
		blobs = append(blobs, l.Digest)
	}
	return pm.Digest, blobs
}

// allDigests returns every digest a multi-platform copy of img holds: the
// top-level manifest, each platform's manifest, config and layers.
func allDigests(img catalog.Image) map[string]bool {
	out := map[string]bool{img.Digest.String(): true}
	for _, pm := range img.Platforms {
		out[pm.Digest.String()] = true
		out[pm.Config.Digest.String()] = true
		for _, l := range pm.Layers {
			out[l.Digest.String()] = true
		}
	}
	return out
}

// mustImage looks an image up in the emulator's catalog.
func mustImage(t *testing.T, imgs map[string]catalog.Image, ref string) catalog.Image {
	t.Helper()
	img, ok := imgs[ref]
	if !ok {
		t.Fatalf("%s is not in the emulator's catalog", ref)
	}
	return img
}
