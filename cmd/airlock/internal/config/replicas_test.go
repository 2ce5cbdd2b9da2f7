package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content/azstore"
)

const azureStorage = "storage:\n  dir: ./spool\n  driver: azure\n  azure:\n    serviceURL: http://127.0.0.1:10000/devstoreaccount1\n    accountName: devstoreaccount1\n    accountKeyEnv: AZURE_STORAGE_KEY\n"

// The interface decodes as written, with its defaults.
func TestReplicasConfig(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(azureStorage + "    container: shared\ncluster:\n  self: 10.0.0.5:5000\n  peers: [10.0.0.5:5000, 10.0.0.6:5000, 10.0.0.7:5000]\n  leaseDuration: 20s\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Storage.Azure
	if !c.Storage.AzureDriver() || a.AccountKeyEnv != "AZURE_STORAGE_KEY" || a.Container != "shared" || a.ServiceURL != "http://127.0.0.1:10000/devstoreaccount1" {
		t.Fatalf("storage %+v azure %+v", c.Storage, a)
	}
	if int64(c.Storage.SpoolBytes) != azstore.DefaultSpoolLimit {
		t.Fatalf("spoolBytes %d, want the default %d", c.Storage.SpoolBytes, azstore.DefaultSpoolLimit)
	}
	if c.Cluster.Self != "10.0.0.5:5000" || len(c.Cluster.Peers) != 3 || c.Cluster.Lease() != 20*time.Second {
		t.Fatalf("cluster %+v", c.Cluster)
	}
	// Without cluster: a replica alone; the container defaults.
	c, err = Parse([]byte(azureStorage + "  spoolBytes: 2GiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Enabled() || c.Storage.Azure.Container != DefaultContainer || c.Storage.SpoolBytes != 2<<30 {
		t.Fatalf("alone: %+v %+v", c.Cluster, c.Storage)
	}
	// The default driver is the filesystem.
	if c, err := Parse(nil); err != nil || c.Storage.Driver != DriverFilesystem {
		t.Fatalf("default driver %q, %v", c.Storage.Driver, err)
	}
}

// A wrong setting names its line, key and what to write.
func TestReplicasConfigErrors(t *testing.T) {
	t.Parallel()
	cluster := "cluster:\n  self: 10.0.0.5:5000\n"
	cases := []struct{ name, body, want string }{
		{"driver", "storage:\n  driver: azur\n", `config: line 2, column 11: storage.driver: "azur" must be filesystem or azure; did you mean azure?`},
		{"azure key typo", "storage:\n  driver: azure\n  azure:\n    acountName: x\n",
			`config: line 4, column 5: storage.azure.acountName: unknown key; did you mean accountName?`},
		{"azure without driver", "storage:\n  azure:\n    accountName: x\n", `config: line 2, column 3: storage.azure: applies only with storage.driver: azure`},
		{"spool without driver", "storage:\n  spoolBytes: 1GiB\n", `config: line 2, column 15: storage.spoolBytes: applies only with storage.driver: azure`},
		{"azure missing", "storage:\n  driver: azure\n", `config: line 1, column 1: storage.azure: is required with storage.driver: azure`},
		{"no account", "storage:\n  driver: azure\n  azure:\n    container: c1c\n", `config: line 3, column 3: storage.azure.accountName: is required`},
		{"two keys", "storage:\n  driver: azure\n  azure:\n    accountName: a\n    accountKey: k\n    accountKeyEnv: K\n",
			`config: line 3, column 3: storage.azure: set at most one of accountKey, accountKeyEnv and accountKeyFile (none: workload identity)`},
		{"key without account", "storage:\n  driver: azure\n  azure:\n    serviceURL: http://127.0.0.1:1/a\n    accountKey: k\n",
			`config: line 3, column 3: storage.azure.accountName: is required with an account key`},
		{"container", "storage:\n  driver: azure\n  azure:\n    accountName: a\n    container: Bad_Name\n",
			`config: line 5, column 16: storage.azure.container: container "Bad_Name": want 3-63 lowercase letters`},
		{"service url", "storage:\n  driver: azure\n  azure:\n    accountName: a\n    serviceURL: ftp://x\n",
			`config: line 5, column 17: storage.azure.serviceURL: serviceURL "ftp://x": want http(s)://host[/account]`},
		{"cluster without azure", cluster, `config: line 1, column 1: cluster: needs storage.driver: azure`},
		{"cluster key typo", azureStorage + "cluster:\n  peer: [a:1]\n", `config: line 9, column 3: cluster.peer: unknown key; did you mean peers?`},
		{"self missing", azureStorage + "cluster:\n  peers: [10.0.0.5:5000]\n", `config: line 8, column 1: cluster.self: is required`},
		{"self not a peer", azureStorage + cluster + "  peers: [10.0.0.6:5000]\n", `config: line 9, column 9: cluster.self: "10.0.0.5:5000" is not in cluster.peers`},
		{"peer twice", azureStorage + cluster + "  peers:\n    - 10.0.0.5:5000\n    - 10.0.0.5:5000\n", `config: line 12, column 7: cluster.peers[1]: "10.0.0.5:5000" is listed twice`},
		{"peer port", azureStorage + cluster + "  peers: [10.0.0.5:5000, 10.0.0.6]\n", `config: line 10, column 26: cluster.peers[1]: "10.0.0.6": want host:port`},
		{"both", azureStorage + cluster + "  peers: [10.0.0.5:5000]\n  peersDNS: airlock:5000\n", `config: line 8, column 1: cluster: set either peers or peersDNS, not both`},
		{"dns self", azureStorage + "cluster:\n  self: airlock-0:5000\n  peersDNS: airlock:5000\n", `config: line 9, column 9: cluster.self: "airlock-0:5000": with peersDNS it must be this replica's IP:port`},
		{"lease short", azureStorage + cluster + "  leaseDuration: 5s\n", `config: line 10, column 18: cluster.leaseDuration: 5s: want whole seconds from 15s to 1m0s (Azure's lease limits)`},
		{"lease long", azureStorage + cluster + "  leaseDuration: 2m\n", `config: line 10, column 18: cluster.leaseDuration: 2m0s: want whole seconds from 15s to 1m0s`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(c.body))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

// storage.azure.accountKeyFile is read from the configuration file's
// directory, as other paths are.
func TestReplicasKeyFileRelative(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "airlock.yaml")
	body := "storage:\n  driver: azure\n  azure:\n    accountName: a\n    accountKeyFile: secrets/key\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "secrets", "key"); c.Storage.Azure.AccountKeyFile != want {
		t.Fatalf("accountKeyFile %q, want %q", c.Storage.Azure.AccountKeyFile, want)
	}
}
