package controlcli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"

	"net/http"

	"github.com/airlock/airlock/deploy"
	"github.com/spf13/pflag"
)

// Cluster is `airlock cluster`: emulated AKS clusters, in the style of
// `az aks`.
func Cluster() Command {
	return Command{
		Name:  "cluster",
		Short: "Emulated AKS clusters: network isolation, reconcile, node configuration",
		Long: `Emulated AKS clusters, in the style of az aks. A network-isolated cluster
bootstraps from a private registry's cache with no egress: AKS manages one
(this airlock, with rule aks-managed-mcr), or you bring your own.`,
		Example: `  airlock cluster create --name aks1 --network-isolated
  airlock cluster nodeconfig --name aks1 --out ./node
  airlock cluster show --name aks1`,
		Sub: []Command{clusterCreate(), clusterUpdate(),
			clusterByName("show", http.MethodGet, "Show a cluster: network isolation, bootstrap registry, nodes needing reimage", "  airlock cluster show --name aks1"),
			clusterByName("delete", http.MethodDelete, "Delete a cluster and what AKS created for it (a bring-your-own registry stays)", "  airlock cluster delete --name aks1"),
			fixed(Command{Name: "list", Short: "List clusters", Example: "  airlock cluster list --server http://127.0.0.1:5000"}, http.MethodGet, "/clusters"),
			clusterReconcile(), clusterUpgrade(), clusterNodeConfig(), nodepoolCommands()},
	}
}

func clusterCreate() Command {
	return Command{
		Name:  "create",
		Args:  "--name NAME [--network-isolated] [flags]",
		Short: "Create a cluster; --network-isolated bootstraps from a private registry's cache with no egress",
		Example: `  # AKS manages the bootstrap registry: this airlock, with rule aks-managed-mcr
  airlock cluster create --name aks1 --network-isolated --kubernetes-version 1.31.3
  # bring your own registry
  airlock cluster create -n aks2 --network-isolated --outbound-type block \\
    --bootstrap-container-registry-resource-id /subscriptions/0/resourceGroups/airlock/providers/Microsoft.ContainerRegistry/registries/teamacr`,
		Setup: func(fs *pflag.FlagSet) func() (Call, error) {
			var s deploy.ClusterSpec
			var pool deploy.NodePoolSpec
			var exts csvFlag
			fs.StringVarP(&s.Name, "name", "n", "", "cluster name")
			fs.StringVarP(&s.ResourceGroup, "resource-group", "g", "", "resource group (default airlock)")
			fs.StringVar(&s.Location, "location", "", "region (default: the server's control.region)")
			fs.StringVarP(&s.KubernetesVersion, "kubernetes-version", "k", "", "Kubernetes version; network isolated needs 1.30 or later (default "+deploy.DefaultKubernetesVersion+")")
			fs.BoolVar(&s.NetworkIsolated, "network-isolated", false, "bootstrap from Cache with outbound type none (or block)")
			fs.StringVar(&s.OutboundType, "outbound-type", "", "none, block, loadBalancer or userDefinedRouting (default loadBalancer; none when network isolated)")
			fs.StringVar(&s.ArtifactSource, "bootstrap-artifact-source", "", "Direct (mcr.microsoft.com) or Cache (a private registry); default Direct, Cache when network isolated")
			fs.StringVar(&s.ContainerRegistryID, "bootstrap-container-registry-resource-id", "", "bring-your-own registry (resource ID or name); without it AKS manages one")
			fs.StringVar(&s.NetworkPlugin, "network-plugin", "", "azure, kubenet or none (default azure)")
			fs.StringVar(&s.NodeOSUpgradeChannel, "node-os-upgrade-channel", "", "NodeImage, None, Unmanaged or SecurityPatch (default NodeImage)")
			fs.StringVar(&pool.OSType, "os-type", "", "OS of the first node pool: Linux or Windows (default Linux)")
			fs.StringVar(&pool.Name, "nodepool-name", "", "name of the first node pool (default "+deploy.DefaultPoolName+")")
			fs.IntVarP(&pool.Count, "node-count", "c", 0, fmt.Sprintf("nodes in the first node pool (default %d)", deploy.DefaultNodeCount))
			fs.StringVar(&pool.VnetSubnetID, "vnet-subnet-id", "", "subnet of a bring-your-own virtual network")
			fs.Var(&exts, "enable-extension", "cluster extension to install (repeatable, or comma-separated)")
			fs.Var(&exts, "extensions", "same as --enable-extension")
			return func() (Call, error) {
				if err := requiredFlags("name", s.Name); err != nil {
					return Call{}, err
				}
				s.Extensions = exts
				s.NodePools = []deploy.NodePoolSpec{pool}
				return Call{Method: http.MethodPost, Path: "/clusters", Body: s}, nil
			}
		},
	}
}

func clusterUpdate() Command {
	return Command{
		Name:  "update",
		Args:  "--name NAME [flags]",
		Short: "Update a cluster; bootstrap profile changes apply to reimaged nodes only (cluster upgrade --node-image-only)",
		Example: `  airlock cluster update --name aks1 --bootstrap-artifact-source Cache
  airlock cluster update --name aks1 --enable-extension microsoft.flux`,
		Setup: func(fs *pflag.FlagSet) func() (Call, error) {
			var u deploy.ClusterUpdate
			var enable, disable csvFlag
			name := nameFlag(fs, "cluster name")
			fs.StringVar(&u.OutboundType, "outbound-type", "", "none, block, loadBalancer or userDefinedRouting")
			fs.StringVar(&u.ArtifactSource, "bootstrap-artifact-source", "", "Direct or Cache")
			fs.StringVar(&u.ContainerRegistryID, "bootstrap-container-registry-resource-id", "", "bring-your-own registry (resource ID or name)")
			fs.StringVar(&u.KubernetesVersion, "kubernetes-version", "", "Kubernetes version")
			fs.StringVar(&u.NodeOSUpgradeChannel, "node-os-upgrade-channel", "", "NodeImage, None, Unmanaged or SecurityPatch")
			fs.StringVar(&u.NetworkPlugin, "network-plugin", "", "azure, kubenet or none")
			fs.Var(&enable, "enable-extension", "extension to add (repeatable)")
			fs.Var(&disable, "disable-extension", "extension to remove (repeatable)")
			return func() (Call, error) {
				u.EnableExtensions, u.DisableExtensions = enable, disable
				return Call{Method: http.MethodPatch, Path: clusterPath(*name), Body: u}, requiredFlags("name", *name)
			}
		},
	}
}

func clusterByName(name, method, short, example string) Command {
	return byName(Command{Name: name, Args: "--name NAME", Short: short, Example: example}, "cluster name", method, clusterPath)
}

func clusterReconcile() Command {
	return Command{
		Name:  "reconcile",
		Args:  "[--name NAME]",
		Short: "Restore a cluster's AKS-managed registry, rule, private endpoint and DNS records now, and report each repair",
		Long:  "Restore what AKS manages for a cluster (or, without --name, for every cluster) and report each repair.",
		Example: `  airlock cluster reconcile --name aks1
  airlock cluster reconcile`,
		Setup: func(fs *pflag.FlagSet) func() (Call, error) {
			name := nameFlag(fs, "cluster name (default: every cluster)")
			return func() (Call, error) {
				if *name == "" {
					return Call{Method: http.MethodPost, Path: "/reconcile"}, nil
				}
				return Call{Method: http.MethodPost, Path: clusterPath(*name) + "/reconcile"}, nil
			}
		},
	}
}

func clusterUpgrade() Command {
	return Command{
		Name:    "upgrade",
		Args:    "--name NAME --node-image-only [--nodepool-name POOL]",
		Short:   "Reimage nodes so that they take the current bootstrap profile",
		Example: `  airlock cluster upgrade --name aks1 --node-image-only --nodepool-name nodepool1`,
		Setup: func(fs *pflag.FlagSet) func() (Call, error) {
			name := nameFlag(fs, "cluster name")
			only := fs.Bool("node-image-only", false, "upgrade only the node image (the only upgrade emulated)")
			pool := fs.String("nodepool-name", "", "reimage one node pool (default: all)")
			return func() (Call, error) {
				if err := requiredFlags("name", *name); err != nil {
					return Call{}, err
				}
				if !*only {
					return Call{}, usageErrorf("only --node-image-only upgrades are emulated")
				}
				q := url.Values{}
				if *pool != "" {
					q.Set("nodepool", *pool)
				}
				return Call{Method: http.MethodPost, Path: clusterPath(*name) + "/upgradeNodeImage", Query: q}, nil
			}
		},
	}
}

func clusterNodeConfig() Command {
	return Command{
		Name:  "nodeconfig",
		Args:  "--name NAME [--out DIR] [flags]",
		Short: "Write what a node needs to pull from the cluster's registry",
		Long: `Write what a node needs to pull from the cluster's registry: containerd's
certs.d/mcr.microsoft.com/hosts.toml, the containerd config_path setting, the
kubelet credential provider config, and /etc/hosts lines. Without --out the
files are printed as JSON.`,
		Example: `  airlock cluster nodeconfig --name aks1 --out ./node
  sudo ctr images pull --hosts-dir ./node/certs.d mcr.microsoft.com/oss/kubernetes/pause:3.10
  # as the node sees it: a CA and a fallback on a closed port
  airlock cluster nodeconfig -n aks1 --ca /etc/ssl/airlock-ca.pem --fallback-server http://127.0.0.1:9`,
		Setup: func(fs *pflag.FlagSet) func() (Call, error) {
			name := nameFlag(fs, "cluster name")
			out := fs.String("out", "", "write the files under this directory (DIR/certs.d/mcr.microsoft.com/hosts.toml, ...); default: print them as JSON")
			scheme := fs.String("scheme", "", "http or https (default: the private endpoint's)")
			host := fs.String("registry-host", "", "host[:port] nodes use for the registry (default: the private endpoint address)")
			ca := fs.String("ca", "", "CA certificate path on the node (ca = ... in hosts.toml)")
			fallback := fs.String("fallback-server", "", "server = URL in hosts.toml: where containerd falls back (default: mcr.microsoft.com, as AKS); a closed port makes mirror failures visible")
			certs := fs.String("certs-dir", "", "containerd config_path on the node (default "+deploy.DefaultCertsDir+")")
			return func() (Call, error) {
				// Paths on the node are absolute; a relative one is resolved
				// where the user typed it (the lab's node is this machine).
				for _, p := range []*string{ca, certs} {
					if *p != "" && !filepath.IsAbs(*p) {
						abs, err := filepath.Abs(*p)
						if err != nil {
							return Call{}, err
						}
						*p = abs
					}
				}
				q := url.Values{}
				for k, v := range map[string]string{"scheme": *scheme, "registryHost": *host, "ca": *ca, "fallbackServer": *fallback, "certsDir": *certs} {
					if v != "" {
						q.Set(k, v)
					}
				}
				c := Call{Method: http.MethodGet, Path: clusterPath(*name) + "/nodeconfig", Query: q}
				if *out != "" {
					dir := *out
					c.Print = func(answer json.RawMessage, stdout io.Writer) error { return writeNodeConfig(answer, dir, stdout) }
				}
				return c, requiredFlags("name", *name)
			}
		},
	}
}

// writeNodeConfig writes the answer's files under dir and prints what it
// wrote.
func writeNodeConfig(answer json.RawMessage, dir string, stdout io.Writer) error {
	var nc deploy.NodeConfig
	if err := json.Unmarshal(answer, &nc); err != nil {
		return err
	}
	written, err := nc.WriteTo(dir)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Cluster  string   `json:"cluster"`
		Registry string   `json:"registry"`
		Endpoint string   `json:"endpoint"`
		Mirror   string   `json:"mirror"`
		Written  []string `json:"written"`
		Warnings []string `json:"warnings,omitempty"`
	}{nc.Cluster, nc.Registry, nc.Endpoint, nc.Mirror, written, nc.Warnings}, "", "  ")
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

func nodepoolCommands() Command {
	return Command{
		Name:    "nodepool",
		Short:   "Node pools: add|delete",
		Example: `  airlock cluster nodepool add --cluster-name aks1 --name pool2 --node-count 2`,
		Sub: []Command{{
			Name:    "add",
			Args:    "--cluster-name C --name POOL [--os-type Linux|Windows] [--node-count N] [--vnet-subnet-id ID]",
			Short:   "Add a node pool, imaged with the current bootstrap profile",
			Example: `  airlock cluster nodepool add --cluster-name aks1 --name pool2 --node-count 2`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				var p deploy.NodePoolSpec
				cluster := fs.String("cluster-name", "", "cluster name")
				fs.StringVarP(&p.Name, "name", "n", "", "node pool name: 1-12 lowercase letters and digits")
				fs.StringVar(&p.OSType, "os-type", "", "Linux or Windows (default Linux)")
				fs.IntVarP(&p.Count, "node-count", "c", 0, fmt.Sprintf("nodes (default %d)", deploy.DefaultNodeCount))
				fs.StringVar(&p.VnetSubnetID, "vnet-subnet-id", "", "subnet of a bring-your-own virtual network")
				return func() (Call, error) {
					return Call{Method: http.MethodPost, Path: clusterPath(*cluster) + "/agentPools", Body: p}, requiredFlags("cluster-name", *cluster, "name", p.Name)
				}
			},
		}, {
			Name:    "delete",
			Args:    "--cluster-name C --name POOL",
			Short:   "Delete a node pool",
			Example: `  airlock cluster nodepool delete --cluster-name aks1 --name pool2`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				cluster := fs.String("cluster-name", "", "cluster name")
				name := nameFlag(fs, "node pool name")
				return func() (Call, error) {
					return Call{Method: http.MethodDelete, Path: clusterPath(*cluster) + "/agentPools/" + esc(*name)}, requiredFlags("cluster-name", *cluster, "name", *name)
				}
			},
		}},
	}
}
