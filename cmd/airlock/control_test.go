package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta/badgermeta"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	dconfig "github.com/containerd/containerd/v2/core/remotes/docker/config"
	clog "github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
)

// cli runs an airlock subcommand against the server and returns the exit
// code, stdout and stderr.
func (a *serving) cli(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(args, "--server", a.base), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (a *serving) mustCLI(args ...string) string {
	a.t.Helper()
	code, out, errOut := a.cli(args...)
	if code != 0 {
		a.t.Fatalf("airlock %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func (a *serving) get(path string) (int, []byte) {
	a.t.Helper()
	resp, err := http.Get(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A rule created through the admin API is served at once, with no restart,
// and survives one; the state of a running server cannot be opened twice.
func TestAdminRulePullableAtOnce(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "dotnet/runtime:8.0", 500, 1)
	raw, _ := img.RawManifest()
	up.PushImage(t, "dotnet/aspnet:8.0", 500, 1)
	dir := t.TempDir()
	cfg := configtest.Serve(upstreamtest.Unreachable(t), dir, up.URL(), "control:\n  registry: teamacr\n")
	a := startServeReady(t, configtest.Write(t, cfg))

	const manifest = "/v2/dotnet/runtime/manifests/8.0"
	if code, _ := a.get(manifest); code != http.StatusNotFound {
		t.Fatalf("before any rule: %d", code)
	}
	// Over HTTP, JSON in and out.
	resp, err := http.Post(a.base+"/admin/v1/registries", "application/json", strings.NewReader(`{"name":"teamacr"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create registry: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	resp, err = http.Post(a.base+"/admin/v1/registries/teamacr/cacheRules", "application/json",
		strings.NewReader(`{"name":"dotnet","sourceRepository":"mcr.microsoft.com/dotnet/*","targetRepository":"dotnet/*"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create rule: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if code, body := a.get(manifest); code != http.StatusOK || !bytes.Equal(body, raw) {
		t.Fatalf("pull right after the rule was created: %d", code)
	}
	// The state is held by the server: an offline edit is refused.
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"acr", "list", "--dir", dir}, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "use --server") {
		t.Fatalf("offline edit of a served state: exit %d %q", code, errOut.String())
	}

	// After a restart the rule is served before anyone touches the API.
	a.stop()
	a = startServeReady(t, configtest.Write(t, cfg))
	if code, _ := a.get("/v2/dotnet/aspnet/manifests/8.0"); code != http.StatusOK {
		t.Fatalf("pull after restart: %d", code)
	}
	out := a.mustCLI("acr", "cache", "list", "-r", "teamacr")
	var rules []deploy.CacheRule
	if err := json.Unmarshal([]byte(out), &rules); err != nil || len(rules) != 1 || rules[0].Target != "dotnet/*" {
		t.Fatalf("cache list: %v %s", err, out)
	}
	a.mustCLI("acr", "cache", "delete", "-r", "teamacr", "-n", "dotnet")
	if code, _ := a.get("/v2/dotnet/runtime/manifests/sha256:" + strings.Repeat("0", 64)); code != http.StatusNotFound {
		t.Fatalf("after the rule was deleted: %d", code)
	}
}

// The hosts.toml `cluster nodeconfig` writes, read by containerd's own
// resolver, pulls mcr.microsoft.com images from the cluster's managed
// registry — this airlock — with the fallback on a closed port; once the
// cluster is deleted, its registry's rule is gone and new images fail.
func TestNodeConfigPullsThroughContainerd(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 700, 1)
	want, _ := img.Digest()
	up.PushImage(t, "oss/kubernetes/coredns:v1.11.1", 700, 1)
	a := startServeReady(t, configtest.Write(t, configtest.Serve(upstreamtest.Unreachable(t), t.TempDir(), up.URL(), "control:\n  registry: labbootstrap\n")))

	var c deploy.ClusterInfo
	if err := json.Unmarshal([]byte(a.mustCLI("cluster", "create", "--name", "aks1", "--network-isolated", "--kubernetes-version", "1.30.3")), &c); err != nil {
		t.Fatal(err)
	}
	if !c.NetworkIsolated || c.BootstrapRegistry == nil || !c.BootstrapRegistry.Served || c.BootstrapRegistry.Endpoint != a.base {
		t.Fatalf("cluster %+v registry %+v", c.Cluster, c.BootstrapRegistry)
	}
	node := t.TempDir()
	a.mustCLI("cluster", "nodeconfig", "--name", "aks1", "--out", node, "--fallback-server", "http://"+upstreamtest.Unreachable(t))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !testing.Verbose() { // containerd logs each fallback
		quiet := logrus.New()
		quiet.SetOutput(io.Discard)
		ctx = clog.WithLogger(ctx, logrus.NewEntry(quiet))
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: dconfig.ConfigureHosts(ctx, dconfig.HostOptions{HostDir: dconfig.HostDirFromRoot(filepath.Join(node, "certs.d"))}),
	})
	_, desc, err := resolver.Resolve(ctx, "mcr.microsoft.com/oss/kubernetes/pause:3.10")
	if err != nil {
		t.Fatalf("containerd resolve through the node config: %v", err)
	}
	if desc.Digest.String() != want.String() {
		t.Fatalf("resolved %s, want %s", desc.Digest, want)
	}
	fetcher, err := resolver.Fetcher(ctx, "mcr.microsoft.com/oss/kubernetes/pause:3.10")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := fetcher.Fetch(ctx, desc)
	if err != nil {
		t.Fatalf("containerd fetch: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if int64(len(got)) != desc.Size {
		t.Fatalf("fetched %d bytes, want %d", len(got), desc.Size)
	}

	a.mustCLI("cluster", "delete", "--name", "aks1")
	if _, _, err := resolver.Resolve(ctx, "mcr.microsoft.com/oss/kubernetes/coredns:v1.11.1"); err == nil {
		t.Fatal("resolve succeeded after the cluster and its registry were deleted")
	}
}

// Bad input exits 2 with one line naming the problem; an unreachable
// server exits 1.
func TestControlCLIBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cluster", "create"}, 2, "--name is required"},
		{[]string{"cluster", "create", "--name", "c", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"cluster", "create", "--name", "c", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"cluster", "frob"}, 2, `unknown command "frob"`},
		{[]string{"cluster", "upgrade", "--name", "c"}, 2, "--node-image-only"},
		{[]string{"acr", "cache", "update", "-r", "acr1", "-n", "rule1"}, 2, "exactly one of --cred-set and --remove-cred-set"},
		{[]string{"cluster", "create", "--name", "c", "--network-isolated", "-k", "1.29.4", "--dir", dir}, 2, "KubernetesVersionNotSupported: network isolated clusters need Kubernetes 1.30"},
		{[]string{"cluster", "create", "--name", "c", "--network-isolated", "--os-type", "Windows", "--dir", dir}, 2, "WindowsNodePoolNotSupported"},
		{[]string{"cluster", "create", "--name", "c", "--network-isolated", "--enable-extension", "microsoft.dapr", "--dir", dir}, 2, "ExtensionNotSupported: the Dapr extension"},
		{[]string{"cluster", "create", "--name", "c", "--network-isolated", "--bootstrap-container-registry-resource-id", "nosuchacr", "--dir", dir}, 2, "BootstrapRegistryNotUsable"},
		{[]string{"acr", "show", "--name", "nosuchacr", "--dir", dir}, 1, "ResourceNotFound"},
		{[]string{"acr", "show", "--name", "someacr", "--server", "http://" + upstreamtest.Unreachable(t)}, 1, "admin API unreachable"},
		{[]string{"acr", "list", "--dir", dir, "--server", "http://127.0.0.1:5000"}, 2, "exclude each other"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		msg := strings.TrimRight(stderr.String(), "\n")
		if code != c.code || strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) || stdout.Len() != 0 {
			t.Errorf("airlock %s: exit %d, stderr %q, stdout %q; want exit %d and one line with %q",
				strings.Join(c.args, " "), code, msg, stdout.String(), c.code, c.want)
		}
	}
}

// With --dir the CLI edits a stopped server's state; it persists between
// runs, and the JSON answers describe it.
func TestControlCLIOfflineState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cli := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append(args, "--dir", dir), &stdout, &stderr); code != 0 {
			t.Fatalf("airlock %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		return stdout.String()
	}
	cli("acr", "create", "--name", "teamacr", "--location", "westeurope")
	cli("acr", "cache", "create", "-r", "teamacr", "-n", "aks-managed-mcr", "--source-repo", "mcr.microsoft.com/*", "--target-repo", "aks-managed-repository/*")
	cli("acr", "private-endpoint", "create", "-r", "teamacr", "-n", "teamacr-pe", "--address", "10.1.2.3:443")
	cli("cluster", "create", "-n", "aks1", "--network-isolated", "--outbound-type", "block",
		"--bootstrap-container-registry-resource-id", deploy.RegistryID("airlock", "teamacr"))
	var c deploy.ClusterInfo
	if err := json.Unmarshal([]byte(cli("cluster", "show", "-n", "aks1")), &c); err != nil {
		t.Fatal(err)
	}
	if c.NetworkProfile.OutboundType != "block" || c.BootstrapRegistry == nil || c.BootstrapRegistry.Managed || c.BootstrapRegistry.Endpoint != "https://10.1.2.3:443" {
		t.Fatalf("cluster show: %+v %+v", c.Cluster, c.BootstrapRegistry)
	}
	var nc deploy.NodeConfig
	if err := json.Unmarshal([]byte(cli("cluster", "nodeconfig", "-n", "aks1", "--ca", "/etc/ssl/airlock-ca.pem")), &nc); err != nil {
		t.Fatal(err)
	}
	if nc.Files[0].Content != "[host.\"https://10.1.2.3:443/v2/aks-managed-repository\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n  ca = \"/etc/ssl/airlock-ca.pem\"\n" {
		t.Fatalf("hosts.toml:\n%s", nc.Files[0].Content)
	}
	cli("cluster", "delete", "-n", "aks1")
	var reg deploy.RegistryInfo
	if err := json.Unmarshal([]byte(cli("acr", "show", "-n", "teamacr")), &reg); err != nil {
		t.Fatal(err)
	}
	if len(reg.CacheRules) != 1 || len(reg.PrivateEndpoints) != 1 || len(reg.DNSRecords) != 2 || reg.DNSRecords[1].Name != "teamacr.westeurope.data" {
		t.Fatalf("BYO registry after cluster delete: %+v", reg)
	}
}

// A bad control block is a configuration error: exit 2, one line.
func TestServeRefusesBadControlConfig(t *testing.T) {
	t.Parallel()
	cases := []struct{ control, want string }{
		{"control:\n  registry: My-Registry\n", "control.registry"},
		{"control:\n  advertise: 10.0.0.2\n", "control.advertise"},
		{"control:\n  advertise: ftp://10.0.0.2:21\n", "control.advertise"},
		{"control:\n  reconcileInterval: -1m\n", "reconcileInterval"},
		{"control:\n  bogus: 1\n", "control.bogus: unknown key"},
	}
	for _, c := range cases {
		p := configtest.Write(t, configtest.Serve("127.0.0.1:0", t.TempDir(), "http://127.0.0.1:1", c.control))
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"serve", "--config", p}, io.Discard, &stderr)
		msg := strings.TrimRight(stderr.String(), "\n")
		if code != 2 || strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
			t.Errorf("%q: exit %d, %q", c.control, code, msg)
		}
	}
}

// Stored rules of the served registry that conflict with the file's rules
// stop serve with a configuration error naming the conflict.
func TestServeRefusesStateConflictingWithConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"acr", "create", "--name", "airlockbootstrap", "--dir", dir},
		{"acr", "cache", "create", "-r", "airlockbootstrap", "-n", "everything", "--source-repo", "mcr.microsoft.com/*", "--target-repo", "*", "--dir", dir},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &stderr); code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, stderr.String())
		}
	}
	rules := "rules:\n  - {name: library, source: docker.io/library/*, target: library/*}\n"
	p := configtest.Write(t, configtest.Serve("127.0.0.1:0", dir, "http://127.0.0.1:1", rules))
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--config", p}, io.Discard, &stderr)
	if msg := strings.TrimRight(stderr.String(), "\n"); code != 2 || !strings.Contains(msg, "WildcardTargetOverlap") || strings.Contains(msg, "\n") {
		t.Fatalf("exit %d: %q", code, msg)
	}
}

// A cache rule may not capture a repository holding pushed content: the
// CLI reads pushed repositories from the cache's own index.
func TestCacheRuleRefusesPushedRepository(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	index, err := badgermeta.Open(filepath.Join(dir, "meta"), zap.NewNop(), badgermeta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("pushed manifest")
	if err := index.PutManifest(context.Background(), "team/app", d, meta.Manifest{Origin: meta.OriginPush, Added: time.Now()}, "v1", meta.Tag{Digest: d, Origin: meta.OriginPush}); err != nil {
		t.Fatal(err)
	}
	if err := index.Close(); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string) {
		var stderr bytes.Buffer
		code := run(context.Background(), append(args, "--dir", dir), io.Discard, &stderr)
		return code, stderr.String()
	}
	if code, msg := cli("acr", "create", "-n", "airlockbootstrap"); code != 0 {
		t.Fatal(msg)
	}
	code, msg := cli("acr", "cache", "create", "-r", "airlockbootstrap", "-n", "team-rule", "--source-repo", "mcr.microsoft.com/team/*", "--target-repo", "team/*")
	if code != 2 || !strings.Contains(msg, "TargetRepositoryPrefixMatchesExistingRegistries") || !strings.Contains(msg, "team/app") {
		t.Fatalf("rule over a pushed repository: exit %d %q", code, msg)
	}
	if code, msg := cli("acr", "cache", "create", "-r", "airlockbootstrap", "-n", "other-rule", "--source-repo", "mcr.microsoft.com/other/*", "--target-repo", "other/*"); code != 0 {
		t.Fatalf("unrelated rule: %q", msg)
	}
}
