// Package aks is what the control module knows about AKS node bootstrap:
// for each supported Kubernetes minor version, the images and artifacts a
// node pulls from mcr.microsoft.com when it joins a cluster (SPEC §5). The
// control module pins them, `airlock warm --cluster` pulls them and
// `airlock cluster nodeconfig` lists them; the MAR emulator generates its
// catalog from the same table, so what a node asks for exists upstream.
//
// It is pure data and imports nothing of airlock.
package aks

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Registry is the registry a node pulls its bootstrap set from (through
// the cache rule aks-managed-mcr on a network-isolated cluster).
const Registry = "mcr.microsoft.com"

// Repositories on mcr.microsoft.com a node pulls from at bootstrap.
const (
	RepoPause            = "oss/kubernetes/pause"
	RepoKubeProxy        = "oss/kubernetes/kube-proxy"
	RepoCoreDNS          = "oss/kubernetes/coredns"
	RepoCloudNodeManager = "oss/kubernetes/azure-cloud-node-manager"
	RepoCNS              = "containernetworking/azure-cns"
	RepoCilium           = "containernetworking/cilium/cilium"
	// RepoKubeletPackage holds the kubelet package, an OCI artifact (ORAS).
	RepoKubeletPackage = "aks/packages/kubernetes/kubelet"
	// RepoKubernetesNode holds the kubernetes-node binaries, tagged
	// <version>-<os>-<arch> (v1.30.7-linux-amd64).
	RepoKubernetesNode = "oss/binaries/kubernetes/kubernetes-node"
	// RepoCredentialProvider holds the ACR credential provider binary,
	// tagged like RepoKubernetesNode.
	RepoCredentialProvider = "oss/binaries/kubernetes/azure-acr-credential-provider"
)

// PauseTag is the pause image every node pulls, whatever its version.
const PauseTag = "3.10"

// NodePlatform is the os-arch suffix of the binary artifacts a node pulls
// (network-isolated clusters have Linux nodes only; the table is amd64's).
const NodePlatform = "linux-amd64"

// ErrUnsupported is returned (wrapped with the version and the supported
// ones) for a Kubernetes version with no bootstrap set.
var ErrUnsupported = errors.New("no AKS bootstrap set for this Kubernetes version")

// Release is what nodes of one Kubernetes minor version pull: the version
// of each component.
type Release struct {
	// Minor is the Kubernetes minor version, "1.31".
	Minor string
	// Kubernetes is the patch release nodes run, "v1.31.3": kube-proxy, the
	// kubelet package and the kubernetes-node binaries carry it.
	Kubernetes string
	// CloudProvider tags azure-cloud-node-manager and the ACR credential
	// provider.
	CloudProvider string
	// CoreDNS, CNS (azure-cns) and Cilium tag those images.
	CoreDNS, CNS, Cilium string
	// Published is the day AKS shipped this set (YYYY-MM-DD); the emulator
	// dates the images it generates with it.
	Published string
}

// Releases returns every supported release, oldest first. Network-isolated
// clusters need Kubernetes 1.30 or later, so the table starts there.
func Releases() []Release {
	return []Release{
		{Minor: "1.30", Kubernetes: "v1.30.7", CloudProvider: "v1.30.8", CoreDNS: "v1.11.3-2", CNS: "v1.6.18", Cilium: "v1.14.19-250129", Published: "2024-11-20"},
		{Minor: "1.31", Kubernetes: "v1.31.3", CloudProvider: "v1.31.2", CoreDNS: "v1.11.3-2", CNS: "v1.6.18", Cilium: "v1.16.6-250129", Published: "2024-11-21"},
		{Minor: "1.32", Kubernetes: "v1.32.0", CloudProvider: "v1.32.1", CoreDNS: "v1.11.3-5", CNS: "v1.6.21", Cilium: "v1.16.6-250129", Published: "2025-01-15"},
	}
}

// Versions returns the supported Kubernetes minor versions, oldest first
// ("1.30", "1.31", ...).
func Versions() []string {
	rs := Releases()
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Minor
	}
	return out
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.\d+)?$`)

// Lookup returns the release of a Kubernetes version: "1.31", "1.31.3" or
// "v1.31.3" (a minor version's nodes pull one set, whatever the patch).
// It returns an error wrapping ErrUnsupported for a version the table does
// not have, and a plain error for one that is not a version.
func Lookup(version string) (Release, error) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return Release{}, fmt.Errorf("Kubernetes version %q must look like 1.31 or 1.31.3", version)
	}
	minor := m[1] + "." + m[2]
	for _, r := range Releases() {
		if r.Minor == minor {
			return r, nil
		}
	}
	return Release{}, fmt.Errorf("Kubernetes %s: %w (supported: %s)", version, ErrUnsupported, strings.Join(Versions(), ", "))
}

// Bootstrap returns what a node of the Kubernetes version pulls at
// bootstrap (see Lookup for the versions accepted and the errors).
func Bootstrap(version string) ([]Ref, error) {
	r, err := Lookup(version)
	if err != nil {
		return nil, err
	}
	return r.Bootstrap(), nil
}

// Bootstrap returns the release's bootstrap set: the container images,
// then the kubelet package and the binaries for NodePlatform.
func (r Release) Bootstrap() []Ref {
	return []Ref{
		{RepoPause, PauseTag},
		{RepoKubeProxy, r.Kubernetes},
		{RepoCoreDNS, r.CoreDNS},
		{RepoCloudNodeManager, r.CloudProvider},
		{RepoCNS, r.CNS},
		{RepoCilium, r.Cilium},
		{RepoKubeletPackage, r.Kubernetes},
		{RepoKubernetesNode, r.Kubernetes + "-" + NodePlatform},
		{RepoCredentialProvider, r.CloudProvider + "-" + NodePlatform},
	}
}

// Ref names a tagged manifest on Registry, without the host.
type Ref struct {
	Repo string
	Tag  string
}

// String returns "repo:tag".
func (r Ref) String() string { return r.Repo + ":" + r.Tag }

// Image returns the reference as a node's container runtime asks for it:
// "mcr.microsoft.com/repo:tag".
func (r Ref) Image() string { return Registry + "/" + r.String() }
