package controlcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/badgerstore"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
)

// find returns the command at path ("acr cache create").
func find(t *testing.T, path string) Command {
	t.Helper()
	words := strings.Fields(path)
	var c Command
	for _, top := range []Command{ACR(), Cluster()} {
		if top.Name == words[0] {
			c = top
		}
	}
	for _, w := range words[1:] {
		found := false
		for _, s := range c.Sub {
			if s.Name == w {
				c, found = s, true
			}
		}
		if !found {
			t.Fatalf("no command %q", path)
		}
	}
	return c
}

// build parses args for the command at path and returns its call.
func build(t *testing.T, path string, args ...string) (Call, error) {
	t.Helper()
	c := find(t, path)
	fs := pflag.NewFlagSet(path, pflag.ContinueOnError)
	b := c.Setup(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%s %v: %v", path, args, err)
	}
	return b()
}

// Flags become one admin API request: method, path (names escaped, a
// registry's resource ID reduced to its name), query and body.
func TestCallsFromFlags(t *testing.T) {
	t.Parallel()
	id := deploy.RegistryID("airlock", "TeamACR")
	cases := []struct {
		path   string
		args   []string
		method string
		url    string
		query  string
		body   any
	}{
		{"acr create", []string{"-n", "teamacr", "-g", "rg1", "-l", "westeurope"}, "POST", "/registries", "",
			deploy.RegistrySpec{Name: "teamacr", ResourceGroup: "rg1", Location: "westeurope"}},
		{"acr show", []string{"--name", id}, "GET", "/registries/teamacr", "", nil},
		{"acr cache create", []string{"-r", id, "-n", "dotnet", "--source-repo", "mcr.microsoft.com/dotnet/*", "--target-repo", "dotnet/*", "--tag-ttl", "90s"},
			"POST", "/registries/teamacr/cacheRules", "",
			deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*", TagTTL: units.Duration(90 * time.Second)}}},
		{"acr cache update", []string{"-r", "teamacr", "-n", "a b", "--remove-cred-set"}, "PATCH", "/registries/teamacr/cacheRules/a%20b", "",
			map[string]string{"credentialSet": ""}},
		{"acr private-endpoint list", []string{"-r", "teamacr"}, "GET", "/privateEndpoints", "registry=teamacr", nil},
		{"acr dns set", []string{"--name", "teamacr", "--ipv4-address", "10.0.0.4"}, "PUT", "/dnsRecords/teamacr", "", map[string]string{"ipv4Address": "10.0.0.4"}},
		{"cluster create", []string{"-n", "aks1", "--network-isolated", "-k", "1.31.3", "-c", "2", "--enable-extension", "a,b", "--extensions", "c"},
			"POST", "/clusters", "",
			deploy.ClusterSpec{Name: "aks1", NetworkIsolated: true, KubernetesVersion: "1.31.3", Extensions: []string{"a", "b", "c"},
				NodePools: []deploy.NodePoolSpec{{Count: 2}}}},
		{"cluster reconcile", nil, "POST", "/reconcile", "", nil},
		{"cluster reconcile", []string{"-n", "aks1"}, "POST", "/clusters/aks1/reconcile", "", nil},
		{"cluster upgrade", []string{"-n", "aks1", "--node-image-only", "--nodepool-name", "pool2"}, "POST", "/clusters/aks1/upgradeNodeImage", "nodepool=pool2", nil},
		{"cluster delete", []string{"-n", "aks1"}, "DELETE", "/clusters/aks1", "", nil},
		{"cluster nodepool add", []string{"--cluster-name", "aks1", "-n", "pool2", "-c", "3"}, "POST", "/clusters/aks1/agentPools", "",
			deploy.NodePoolSpec{Name: "pool2", Count: 3}},
	}
	for _, c := range cases {
		call, err := build(t, c.path, c.args...)
		if err != nil {
			t.Errorf("%s %v: %v", c.path, c.args, err)
			continue
		}
		if call.Method != c.method || call.Path != c.url || call.Query.Encode() != c.query || !reflect.DeepEqual(call.Body, c.body) {
			t.Errorf("%s %v: %s %s?%s %#v", c.path, c.args, call.Method, call.Path, call.Query.Encode(), call.Body)
		}
	}
}

// Missing or contradictory flags are usage errors naming the flag.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path string
		args []string
		want string
	}{
		{"acr create", nil, "--name is required"},
		{"acr cache create", []string{"-r", "teamacr", "-n", "x"}, "--source-repo is required"},
		{"acr cache update", []string{"-r", "teamacr", "-n", "x"}, "exactly one of --cred-set and --remove-cred-set"},
		{"cluster upgrade", []string{"-n", "aks1"}, "--node-image-only"},
		{"cluster nodepool delete", []string{"-n", "pool2"}, "--cluster-name is required"},
	} {
		_, err := build(t, c.path, c.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want a UsageError with %q", c.path, c.args, err, c.want)
		}
	}
}

// Every command of the tree says what it does and shows an example; a
// group has subcommands, a leaf a call.
func TestTreeIsDescribed(t *testing.T) {
	t.Parallel()
	var walk func(path string, c Command)
	walk = func(path string, c Command) {
		path += " " + c.Name
		if c.Short == "" || c.Example == "" || !strings.Contains(c.Example, "airlock") {
			t.Errorf("%s: short %q example %q", path, c.Short, c.Example)
		}
		if (c.Setup == nil) == (len(c.Sub) == 0) {
			t.Errorf("%s: a command is either a group or a call", path)
		}
		for _, s := range c.Sub {
			walk(path, s)
		}
	}
	walk("airlock", ACR())
	walk("airlock", Cluster())
}

func newClient(t *testing.T) *adminapi.Client {
	t.Helper()
	store, err := badgerstore.Open("", zap.NewNop(), badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := deploy.New(context.Background(), store, deploy.Binding{Registry: "labbootstrap", Address: "127.0.0.1:5000", Scheme: "http"}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(adminapi.New(svc, zap.NewNop()))
	t.Cleanup(srv.Close)
	return adminapi.NewClient(srv.URL, srv.Client())
}

// Do prints the answer's JSON, or writes the node configuration's files;
// a request the control module refuses as invalid is a usage error; an
// unreachable server says how to reach one.
func TestDo(t *testing.T) {
	ctx := context.Background()
	client := newClient(t)
	var out bytes.Buffer
	call, _ := build(t, "cluster create", "-n", "aks1", "--network-isolated")
	if err := Do(ctx, client, call, &out); err != nil {
		t.Fatal(err)
	}
	var info deploy.ClusterInfo
	if err := json.Unmarshal(out.Bytes(), &info); err != nil || info.Name != "aks1" || !info.NetworkIsolated {
		t.Fatalf("cluster create printed %s (%v)", out.String(), err)
	}

	dir := t.TempDir()
	t.Chdir(dir)
	call, _ = build(t, "cluster nodeconfig", "-n", "aks1", "--out", "node", "--certs-dir", "node/certs.d")
	if got := call.Query.Get("certsDir"); got != filepath.Join(dir, "node/certs.d") {
		t.Fatalf("a relative --certs-dir is resolved where it was typed: %q", got)
	}
	out.Reset()
	if err := Do(ctx, client, call, &out); err != nil {
		t.Fatal(err)
	}
	hosts, err := os.ReadFile(filepath.Join(dir, "node", "certs.d", "mcr.microsoft.com", "hosts.toml"))
	if err != nil || !strings.Contains(string(hosts), "http://127.0.0.1:5000/v2/aks-managed-repository") || !strings.Contains(out.String(), `"written"`) {
		t.Fatalf("nodeconfig --out: %v\n%s\n%s", err, hosts, out.String())
	}

	call, _ = build(t, "acr create", "-n", "NO")
	err = Do(ctx, client, call, &out)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "InvalidParameter") && !strings.Contains(err.Error(), "Registry") {
		t.Fatalf("an invalid registry name: %v", err)
	}

	down := adminapi.NewClient("http://127.0.0.1:1", &http.Client{})
	call, _ = build(t, "acr list")
	if err := Do(ctx, down, call, &out); !errors.Is(err, adminapi.ErrUnreachable) || !strings.Contains(err.Error(), "start airlock serve") {
		t.Fatalf("unreachable: %v", err)
	}
}

// A cluster's bootstrap images: its Kubernetes version from the control
// module, the list from the table given.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	call, _ := build(t, "cluster create", "-n", "aks1", "-k", "1.30.3")
	if err := Do(ctx, client, call, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var asked string
	b := Bootstrap{Client: client, Images: func(v string) ([]string, error) { asked = v; return []string{"aks-managed-repository/a:1"}, nil }}
	refs, err := b.BootstrapImages(ctx, "aks1")
	if err != nil || asked != "1.30.3" || len(refs) != 1 {
		t.Fatalf("%v %q %v", refs, asked, err)
	}
	if _, err := b.BootstrapImages(ctx, "nosuch"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("unknown cluster: %v", err)
	}
}
