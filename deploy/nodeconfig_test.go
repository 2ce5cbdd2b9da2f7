package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
)

// The hosts.toml is byte for byte what AKS writes (SPEC §2), pointing at
// the private endpoint.
func TestNodeConfigFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks1")))
	nc := must[*deploy.NodeConfig](t)(e.svc.NodeConfig(ctx, "aks1", deploy.NodeConfigOptions{}))
	files := map[string]string{}
	for _, f := range nc.Files {
		files[f.Path] = f.Content
	}
	want := `[host."http://10.0.0.2:5000/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	if got := files["certs.d/mcr.microsoft.com/hosts.toml"]; got != want {
		t.Fatalf("hosts.toml:\n%s\nwant:\n%s", got, want)
	}
	if nc.Mirror != "10.0.0.2:5000/aks-managed-repository" || nc.Endpoint != "http://10.0.0.2:5000" || nc.Registry != boundName {
		t.Fatalf("node config %+v", nc)
	}
	cp := files["kubelet/credential-provider-config.yaml"]
	if !strings.Contains(cp, "      - --registry-mirror=mcr.microsoft.com:10.0.0.2:5000/aks-managed-repository\n") || !strings.Contains(cp, `      - "mcr.microsoft.com"`) {
		t.Fatalf("credential provider config:\n%s", cp)
	}
	if v2 := files["containerd/config-path-v2.toml"]; !strings.Contains(v2, "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n") {
		t.Fatalf("containerd 1.7 snippet:\n%s", v2)
	}
	if v3 := files["containerd/config-path-v3.toml"]; !strings.Contains(v3, "[plugins.\"io.containerd.cri.v1.images\".registry]") {
		t.Fatalf("containerd 2 snippet:\n%s", v3)
	}
	if h := files["hosts"]; !strings.Contains(h, "10.0.0.2 labbootstrap.azurecr.io labbootstrap.privatelink.azurecr.io\n") ||
		!strings.Contains(h, "10.0.0.2 labbootstrap.westus2.data.azurecr.io labbootstrap.westus2.data.privatelink.azurecr.io\n") {
		t.Fatalf("hosts:\n%s", h)
	}

	// Lab options: a fallback server that must not hide failures, a CA.
	nc = must[*deploy.NodeConfig](t)(e.svc.NodeConfig(ctx, "aks1", deploy.NodeConfigOptions{
		Scheme: "https", FallbackServer: "http://127.0.0.1:9", CA: "/etc/airlock/ca.pem"}))
	want = `server = "http://127.0.0.1:9"

[host."https://10.0.0.2:5000/v2/aks-managed-repository"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = "/etc/airlock/ca.pem"
`
	if nc.Files[0].Content != want {
		t.Fatalf("hosts.toml with options:\n%s", nc.Files[0].Content)
	}

	bad := []deploy.NodeConfigOptions{
		{Scheme: "ftp"}, {FallbackServer: "127.0.0.1:9"}, {FallbackServer: `http://x/"y`}, {CA: "ca.pem"}, {RegistryHost: `a"b`},
	}
	for _, o := range bad {
		if _, err := e.svc.NodeConfig(ctx, "aks1", o); code(t, err) != deploy.CodeInvalidParameter {
			t.Errorf("options %+v: %v", o, err)
		}
	}
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "direct"}))
	if _, err := e.svc.NodeConfig(ctx, "direct", deploy.NodeConfigOptions{}); code(t, err) != deploy.CodeDirectNeedsNoNodeConfig {
		t.Fatalf("nodeconfig of a Direct cluster: %v", err)
	}
}

// containerd's own hosts.toml loader routes mcr.microsoft.com to the
// registry under /v2/aks-managed-repository, for pull and resolve only,
// then to the fallback server.
func TestNodeConfigParsedByContainerd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks1")))
	for _, c := range []struct {
		name                         string
		o                            deploy.NodeConfigOptions
		fallbackScheme, fallbackHost string
	}{
		{"as AKS", deploy.NodeConfigOptions{}, "https", "mcr.microsoft.com"},
		{"lab fallback", deploy.NodeConfigOptions{FallbackServer: "http://127.0.0.1:9"}, "http", "127.0.0.1:9"},
	} {
		nc := must[*deploy.NodeConfig](t)(e.svc.NodeConfig(ctx, "aks1", c.o))
		dir := t.TempDir()
		written := must[[]string](t)(nc.WriteTo(dir))
		if len(written) != len(nc.Files) {
			t.Fatalf("%s: wrote %v", c.name, written)
		}
		if _, err := os.Stat(filepath.Join(dir, "certs.d", "mcr.microsoft.com", "hosts.toml")); err != nil {
			t.Fatal(err)
		}
		hosts := config.ConfigureHosts(ctx, config.HostOptions{HostDir: config.HostDirFromRoot(filepath.Join(dir, "certs.d"))})
		got, err := hosts("mcr.microsoft.com")
		if err != nil {
			t.Fatalf("%s: containerd refused the hosts.toml: %v", c.name, err)
		}
		if len(got) != 2 {
			t.Fatalf("%s: %d hosts", c.name, len(got))
		}
		m := got[0]
		if m.Scheme != "http" || m.Host != "10.0.0.2:5000" || m.Path != "/v2/aks-managed-repository" {
			t.Fatalf("%s: mirror %s://%s%s", c.name, m.Scheme, m.Host, m.Path)
		}
		if m.Capabilities != docker.HostCapabilityPull|docker.HostCapabilityResolve {
			t.Fatalf("%s: capabilities %b", c.name, m.Capabilities)
		}
		if f := got[1]; f.Scheme != c.fallbackScheme || f.Host != c.fallbackHost || f.Path != "/v2" {
			t.Fatalf("%s: fallback %s://%s%s", c.name, f.Scheme, f.Host, f.Path)
		}
	}
}
