package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"

	"github.com/airlock/airlock/deploy"
)

// clusterCommands is `airlock cluster`: emulated AKS clusters, in the
// style of `az aks`.
func clusterCommands() group {
	return group{
		"create":     clusterCreate().command("cluster create"),
		"update":     clusterUpdate().command("cluster update"),
		"show":       clusterByName("GET", "", "show a cluster: network isolation, bootstrap registry, nodes needing reimage").command("cluster show"),
		"delete":     clusterByName("DELETE", "", "delete a cluster and what AKS created for it (a bring-your-own registry stays)").command("cluster delete"),
		"list":       clusterList().command("cluster list"),
		"reconcile":  clusterReconcile().command("cluster reconcile"),
		"upgrade":    clusterUpgrade().command("cluster upgrade"),
		"nodeconfig": clusterNodeConfig().command("cluster nodeconfig"),
		"nodepool":   {"node pools: add|delete", nodepoolCommands().run("cluster nodepool")},
	}
}

func clusterCreate() op {
	return op{
		summary: "create a cluster; --network-isolated bootstraps from a private registry's cache with no egress",
		usage: "--name NAME [--network-isolated] [--outbound-type none|block|loadBalancer|userDefinedRouting]\n" +
			"       [--bootstrap-artifact-source Direct|Cache] [--bootstrap-container-registry-resource-id ID]\n" +
			"       [--kubernetes-version 1.31.3] [--network-plugin azure|kubenet|none] [--node-os-upgrade-channel NodeImage|None|...]\n" +
			"       [--os-type Linux|Windows] [--nodepool-name N] [--node-count 3] [--vnet-subnet-id ID] [--enable-extension X]...",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			var s deploy.ClusterSpec
			var pool deploy.NodePoolSpec
			var exts csvFlag
			fs.StringVar(&s.Name, "name", "", "cluster name")
			fs.StringVar(&s.Name, "n", "", "short for --name")
			fs.StringVar(&s.ResourceGroup, "resource-group", "", "resource group (default airlock)")
			fs.StringVar(&s.ResourceGroup, "g", "", "short for --resource-group")
			fs.StringVar(&s.Location, "location", "", "region (default: the server's control.region)")
			fs.StringVar(&s.KubernetesVersion, "kubernetes-version", "", "Kubernetes version; network isolated needs 1.30 or later (default "+deploy.DefaultKubernetesVersion+")")
			fs.StringVar(&s.KubernetesVersion, "k", "", "short for --kubernetes-version")
			fs.BoolVar(&s.NetworkIsolated, "network-isolated", false, "bootstrap from Cache with outbound type none (or block)")
			fs.StringVar(&s.OutboundType, "outbound-type", "", "none, block, loadBalancer or userDefinedRouting (default loadBalancer; none when network isolated)")
			fs.StringVar(&s.ArtifactSource, "bootstrap-artifact-source", "", "Direct (mcr.microsoft.com) or Cache (a private registry); default Direct, Cache when network isolated")
			fs.StringVar(&s.ContainerRegistryID, "bootstrap-container-registry-resource-id", "", "bring-your-own registry (resource ID or name); without it AKS manages one")
			fs.StringVar(&s.NetworkPlugin, "network-plugin", "", "azure, kubenet or none (default azure)")
			fs.StringVar(&s.NodeOSUpgradeChannel, "node-os-upgrade-channel", "", "NodeImage, None, Unmanaged or SecurityPatch (default NodeImage)")
			fs.StringVar(&pool.OSType, "os-type", "", "OS of the first node pool: Linux or Windows (default Linux)")
			fs.StringVar(&pool.Name, "nodepool-name", "", "name of the first node pool (default "+deploy.DefaultPoolName+")")
			fs.IntVar(&pool.Count, "node-count", 0, fmt.Sprintf("nodes in the first node pool (default %d)", deploy.DefaultNodeCount))
			fs.IntVar(&pool.Count, "c", 0, "short for --node-count")
			fs.StringVar(&pool.VnetSubnetID, "vnet-subnet-id", "", "subnet of a bring-your-own virtual network")
			fs.Var(&exts, "enable-extension", "cluster extension to install (repeatable, or comma-separated)")
			fs.Var(&exts, "extensions", "same as --enable-extension")
			return func() (call, error) {
				if err := required("name", s.Name); err != nil {
					return call{}, err
				}
				s.Extensions = exts
				s.NodePools = []deploy.NodePoolSpec{pool}
				return call{method: "POST", path: "/clusters", body: s}, nil
			}
		},
	}
}

func clusterUpdate() op {
	return op{
		summary: "update a cluster; bootstrap profile changes apply to reimaged nodes only (cluster upgrade --node-image-only)",
		usage:   "--name NAME [--outbound-type T] [--bootstrap-artifact-source Direct|Cache] [--bootstrap-container-registry-resource-id ID] [...]",
		setup: func(fs *flag.FlagSet) func() (call, error) {
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
			return func() (call, error) {
				u.EnableExtensions, u.DisableExtensions = enable, disable
				return call{method: "PATCH", path: "/clusters/" + esc(*name), body: u}, required("name", *name)
			}
		},
	}
}

func clusterByName(method, suffix, summary string) op {
	return op{
		summary: summary,
		usage:   "--name NAME",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "cluster name")
			return func() (call, error) {
				return call{method: method, path: "/clusters/" + esc(*name) + suffix}, required("name", *name)
			}
		},
	}
}

func clusterList() op {
	return op{
		summary: "list clusters",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			return func() (call, error) { return call{method: "GET", path: "/clusters"}, nil }
		},
	}
}

func clusterReconcile() op {
	return op{
		summary: "restore a cluster's AKS-managed registry, rule, private endpoint and DNS records now, and report each repair",
		usage:   "[--name NAME]   (every cluster when no name is given)",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "cluster name (default: every cluster)")
			return func() (call, error) {
				if *name == "" {
					return call{method: "POST", path: "/reconcile"}, nil
				}
				return call{method: "POST", path: "/clusters/" + esc(*name) + "/reconcile"}, nil
			}
		},
	}
}

func clusterUpgrade() op {
	return op{
		summary: "reimage nodes so that they take the current bootstrap profile",
		usage:   "--name NAME --node-image-only [--nodepool-name POOL]",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "cluster name")
			only := fs.Bool("node-image-only", false, "upgrade only the node image (the only upgrade emulated)")
			pool := fs.String("nodepool-name", "", "reimage one node pool (default: all)")
			return func() (call, error) {
				if err := required("name", *name); err != nil {
					return call{}, err
				}
				if !*only {
					return call{}, usagef("only --node-image-only upgrades are emulated")
				}
				q := url.Values{}
				if *pool != "" {
					q.Set("nodepool", *pool)
				}
				return call{method: "POST", path: "/clusters/" + esc(*name) + "/upgradeNodeImage", query: q}, nil
			}
		},
	}
}

func clusterNodeConfig() op {
	return op{
		summary: "write what a node needs to pull from the cluster's registry: containerd certs.d/mcr.microsoft.com/hosts.toml,\n" +
			"the containerd config_path setting, the kubelet credential provider config, and /etc/hosts lines",
		usage: "--name NAME [--out DIR] [--scheme http|https] [--registry-host HOST:PORT] [--ca FILE] [--fallback-server URL] [--certs-dir DIR]",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "cluster name")
			out := fs.String("out", "", "write the files under this directory (DIR/certs.d/mcr.microsoft.com/hosts.toml, ...); default: print them as JSON")
			scheme := fs.String("scheme", "", "http or https (default: the private endpoint's)")
			host := fs.String("registry-host", "", "host[:port] nodes use for the registry (default: the private endpoint address)")
			ca := fs.String("ca", "", "CA certificate path on the node (ca = ... in hosts.toml)")
			fallback := fs.String("fallback-server", "", "server = URL in hosts.toml: where containerd falls back (default: mcr.microsoft.com, as AKS); a closed port makes mirror failures visible")
			certs := fs.String("certs-dir", "", "containerd config_path on the node (default "+deploy.DefaultCertsDir+")")
			return func() (call, error) {
				// Paths on the node are absolute; a relative one is resolved
				// where the user typed it (the lab's node is this machine).
				for _, p := range []*string{ca, certs} {
					if *p != "" && !filepath.IsAbs(*p) {
						abs, err := filepath.Abs(*p)
						if err != nil {
							return call{}, err
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
				c := call{method: "GET", path: "/clusters/" + esc(*name) + "/nodeconfig", query: q}
				if *out != "" {
					dir := *out
					c.print = func(answer json.RawMessage, stdout io.Writer) error { return writeNodeConfig(answer, dir, stdout) }
				}
				return c, required("name", *name)
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

func nodepoolCommands() group {
	return group{
		"add": op{
			summary: "add a node pool, imaged with the current bootstrap profile",
			usage:   "--cluster-name C --name POOL [--os-type Linux|Windows] [--node-count N] [--vnet-subnet-id ID]",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				var p deploy.NodePoolSpec
				cluster := fs.String("cluster-name", "", "cluster name")
				fs.StringVar(&p.Name, "name", "", "node pool name: 1-12 lowercase letters and digits")
				fs.StringVar(&p.Name, "n", "", "short for --name")
				fs.StringVar(&p.OSType, "os-type", "", "Linux or Windows (default Linux)")
				fs.IntVar(&p.Count, "node-count", 0, fmt.Sprintf("nodes (default %d)", deploy.DefaultNodeCount))
				fs.IntVar(&p.Count, "c", 0, "short for --node-count")
				fs.StringVar(&p.VnetSubnetID, "vnet-subnet-id", "", "subnet of a bring-your-own virtual network")
				return func() (call, error) {
					return call{method: "POST", path: "/clusters/" + esc(*cluster) + "/agentPools", body: p}, required("cluster-name", *cluster, "name", p.Name)
				}
			},
		}.command("cluster nodepool add"),
		"delete": op{
			summary: "delete a node pool",
			usage:   "--cluster-name C --name POOL",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				cluster := fs.String("cluster-name", "", "cluster name")
				name := nameFlag(fs, "node pool name")
				return func() (call, error) {
					return call{method: "DELETE", path: "/clusters/" + esc(*cluster) + "/agentPools/" + esc(*name)}, required("cluster-name", *cluster, "name", *name)
				}
			},
		}.command("cluster nodepool delete"),
	}
}
