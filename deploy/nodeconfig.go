package deploy

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/airlock/airlock/deploy/aks"
)

// DefaultCertsDir is containerd's config_path on an AKS node.
const DefaultCertsDir = "/etc/containerd/certs.d"

// NodeConfigOptions shape the files written for a node.
type NodeConfigOptions struct {
	// Scheme overrides the private endpoint's scheme: http for a lab
	// registry without TLS.
	Scheme string `json:"scheme,omitempty"`
	// RegistryHost overrides host[:port] nodes use for the registry
	// (default: the private endpoint address). Give the login server
	// (<registry>.azurecr.io) where the private DNS records resolve.
	RegistryHost string `json:"registryHost,omitempty"`
	// CA is the path of a CA certificate on the node: ca = "..." in hosts.toml.
	CA string `json:"ca,omitempty"`
	// FallbackServer is written as server = "..." in hosts.toml: where
	// containerd goes when the mirror answers 404 or fails. Empty keeps
	// AKS's (implicit https://mcr.microsoft.com). Point it at a closed port
	// to make sure no fallback hides a failure of the mirror.
	FallbackServer string `json:"fallbackServer,omitempty"`
	// CertsDir is containerd's config_path on the node (DefaultCertsDir).
	CertsDir string `json:"certsDir,omitempty"`
}

// File is one file for a node, at Path relative to the output directory.
type File struct {
	Path    string      `json:"path"`
	Mode    os.FileMode `json:"mode"`
	Content string      `json:"content"`
}

// NodeConfig is what a node of a Cache cluster needs to pull from its
// registry.
type NodeConfig struct {
	Cluster  string `json:"cluster"`
	Registry string `json:"registry"`
	// Endpoint is scheme://host[:port] of the registry as nodes reach it.
	Endpoint string `json:"endpoint"`
	// Mirror is AKS's bootstrap container registry server:
	// <registry-host>/aks-managed-repository.
	Mirror   string   `json:"mirror"`
	Files    []File   `json:"files"`
	Warnings []string `json:"warnings,omitempty"`
}

// Paths of the files, relative to the output directory.
const (
	HostsTOMLPath          = "certs.d/" + MirroredHost + "/hosts.toml"
	ContainerdV2Path       = "containerd/config-path-v2.toml"
	ContainerdV3Path       = "containerd/config-path-v3.toml"
	CredentialProviderPath = "kubelet/credential-provider-config.yaml"
	EtcHostsPath           = "hosts"
	// BootstrapImagesPath is the image list of what the node pulls at
	// bootstrap (deploy/aks), for `airlock warm --list` or a runtime.
	BootstrapImagesPath = "bootstrap-images.txt"
)

// NodeConfig returns the files a node of the cluster needs: containerd's
// hosts.toml for mcr.microsoft.com as AKS writes it (SPEC §2), the
// config_path setting for containerd 1.7 and 2.x, the kubelet credential
// provider config with --registry-mirror, /etc/hosts lines standing in
// for the private DNS zone, and the list of images the node pulls at
// bootstrap for the cluster's Kubernetes version.
func (s *Service) NodeConfig(ctx context.Context, cluster string, o NodeConfigOptions) (*NodeConfig, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	var out *NodeConfig
	err := s.view(ctx, func(st *State) error {
		c, err := lookupCluster(st, cluster)
		if err != nil {
			return err
		}
		if c.BootstrapProfile.ArtifactSource != SourceCache {
			return invalid(CodeDirectNeedsNoNodeConfig, "cluster %s bootstraps from mcr.microsoft.com (artifact source Direct): its nodes need no registry configuration", cluster)
		}
		reg, err := lookupRegistry(st, c.BootstrapProfile.ContainerRegistryID)
		if err != nil {
			return err
		}
		pe := primaryEndpoint(st, reg.Name)
		if pe == nil {
			return invalid(CodePrivateEndpointMissing, "registry %s has no private endpoint: nodes without egress cannot reach it", reg.Name)
		}
		scheme, host := pe.Scheme, pe.Address
		if o.Scheme != "" {
			scheme = o.Scheme
		}
		if o.RegistryHost != "" {
			host = o.RegistryHost
		}
		out = &NodeConfig{Cluster: c.Name, Registry: reg.Name, Endpoint: scheme + "://" + host, Mirror: host + "/" + MirrorRepository}
		if err := s.registryProblem(st, reg); err != nil {
			out.Warnings = append(out.Warnings, err.Error())
		}
		certsDir := o.CertsDir
		if certsDir == "" {
			certsDir = DefaultCertsDir
		}
		out.Files = []File{
			{Path: HostsTOMLPath, Mode: 0o644, Content: HostsTOML(scheme, host, o.CA, o.FallbackServer)},
			{Path: ContainerdV2Path, Mode: 0o644, Content: containerdConfigPath(2, certsDir)},
			{Path: ContainerdV3Path, Mode: 0o644, Content: containerdConfigPath(3, certsDir)},
			{Path: CredentialProviderPath, Mode: 0o644, Content: credentialProviderConfig(out.Mirror)},
		}
		if list, err := bootstrapList(c); err != nil {
			out.Warnings = append(out.Warnings, unlistedWarning(c, err))
		} else {
			out.Files = append(out.Files, File{Path: BootstrapImagesPath, Mode: 0o644, Content: list})
		}
		if h := etcHosts(st, reg); h != "" {
			out.Files = append(out.Files, File{Path: EtcHostsPath, Mode: 0o644, Content: h})
		}
		return nil
	})
	return out, err
}

func (o NodeConfigOptions) check() error {
	if o.Scheme != "" {
		if err := checkScheme(o.Scheme); err != nil {
			return err
		}
	}
	if o.RegistryHost != "" {
		if err := checkAddress(o.RegistryHost); err != nil {
			return err
		}
	}
	for _, p := range []string{o.CA, o.CertsDir} {
		if p != "" && (!path.IsAbs(p) || !tomlSafe(p)) {
			return invalid(CodeInvalidParameter, "%q must be an absolute path on the node", p)
		}
	}
	if o.FallbackServer != "" {
		u, err := url.Parse(o.FallbackServer)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !tomlSafe(o.FallbackServer) {
			return invalid(CodeInvalidParameter, "fallback server %q must be an http(s)://host[:port] URL", o.FallbackServer)
		}
	}
	return nil
}

// HostsTOML is containerd's hosts.toml for mcr.microsoft.com exactly as AKS
// writes it, with an optional server (fallback) line and ca line.
func HostsTOML(scheme, host, ca, server string) string {
	var b strings.Builder
	if server != "" {
		fmt.Fprintf(&b, "server = \"%s\"\n\n", server)
	}
	fmt.Fprintf(&b, "[host.\"%s://%s/v2/%s\"]\n", scheme, host, MirrorRepository)
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	b.WriteString("  override_path = true\n")
	if ca != "" {
		fmt.Fprintf(&b, "  ca = \"%s\"\n", ca)
	}
	return b.String()
}

// tomlSafe reports whether s can go between double quotes in TOML as is.
func tomlSafe(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

func containerdConfigPath(version int, certsDir string) string {
	plugin := "io.containerd.grpc.v1.cri"
	runtime := "containerd 1.7"
	if version == 3 {
		plugin, runtime = "io.containerd.cri.v1.images", "containerd 2.x"
	}
	return fmt.Sprintf("# %s: registry hosts come from %s/<host>/hosts.toml\nversion = %d\n\n[plugins.\"%s\".registry]\n  config_path = \"%s\"\n",
		runtime, certsDir, version, plugin, certsDir)
}

// credentialProviderConfig is the kubelet credential provider config AKS
// writes on a network-isolated node.
func credentialProviderConfig(mirror string) string {
	return `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: acr-credential-provider
    matchImages:
      - "*.azurecr.io"
      - "*.azurecr.cn"
      - "*.azurecr.de"
      - "*.azurecr.us"
      - "` + MirroredHost + `"
    defaultCacheDuration: "10m"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args:
      - /etc/kubernetes/azure.json
      - --registry-mirror=` + MirroredHost + ":" + mirror + "\n"
}

// bootstrapList is the image list (one reference a line, # comments) of
// what a node of c pulls from mcr.microsoft.com at bootstrap, through the
// mirror.
func bootstrapList(c *Cluster) (string, error) {
	refs, err := aks.Bootstrap(c.KubernetesVersion)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# what a node of cluster %s (Kubernetes %s) pulls at bootstrap\n", c.Name, c.KubernetesVersion)
	for _, r := range refs {
		b.WriteString(r.Image() + "\n")
	}
	return b.String(), nil
}

// unlistedWarning says that the bootstrap set of c's version is unknown.
func unlistedWarning(c *Cluster, err error) string {
	return fmt.Sprintf("%v: the images nodes of cluster %s pull at bootstrap are not known, so not pinned or listed", err, c.Name)
}

// etcHosts resolves the registry's names through its private DNS records.
func etcHosts(st *State, reg *Registry) string {
	var b strings.Builder
	for _, k := range sortedKeys(st.Records) {
		r := st.Records[k]
		if r.Registry != reg.Name || r.Type != "A" {
			continue
		}
		fmt.Fprintf(&b, "%s %s.azurecr.io %s\n", r.Address, r.Name, r.FQDN())
	}
	return b.String()
}

// WriteTo writes the files under dir and returns their paths.
func (n *NodeConfig) WriteTo(dir string) ([]string, error) {
	var written []string
	for _, f := range n.Files {
		clean := filepath.Clean(filepath.FromSlash(f.Path))
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
			return written, fmt.Errorf("nodeconfig: file path %q leaves the output directory", f.Path)
		}
		p := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, err
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(f.Content), f.Mode.Perm()); err != nil {
			return written, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}
