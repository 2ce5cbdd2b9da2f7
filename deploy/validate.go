package deploy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MinKubernetesMinor is the oldest Kubernetes minor version (1.x) a
// network-isolated cluster supports.
const MinKubernetesMinor = 30

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.(\d+))?$`)

// unsupportedExtensions maps a normalised extension name (lowercase, no
// "microsoft." prefix, letters and digits only) to the name the limitation
// uses.
var unsupportedExtensions = map[string]string{
	"dapr":                     "Dapr",
	"appconfiguration":         "Azure App Configuration",
	"azureml":                  "Azure Machine Learning",
	"azuremlkubernetes":        "Azure Machine Learning",
	"flux":                     "Flux (GitOps)",
	"azurebackup":              "Azure Backup for AKS",
	"dataprotectionkubernetes": "Azure Backup for AKS",
}

func normaliseExtension(e string) string {
	e = strings.TrimPrefix(strings.ToLower(e), "microsoft.")
	var b strings.Builder
	for _, r := range e {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isolated reports whether the network-isolated limitations apply: nodes
// bootstrap from a cache, or the cluster has no egress.
func (c *Cluster) isolated() bool {
	return c.BootstrapProfile.ArtifactSource == SourceCache || noEgress(c.NetworkProfile.OutboundType)
}

func noEgress(outbound string) bool { return outbound == OutboundNone || outbound == OutboundBlock }

// byoVNet reports whether any node pool is in a subnet the user brought.
func (c *Cluster) byoVNet() bool {
	for _, p := range c.AgentPools {
		if p.VnetSubnetID != "" {
			return true
		}
	}
	return false
}

// validateCluster checks values, then the limitations of network-isolated
// clusters (SPEC §1). The registry is checked by checkRegistry.
func validateCluster(c *Cluster) error {
	if !clusterNameRE.MatchString(c.Name) {
		return invalid(CodeInvalidParameter, "cluster name %q must be 1-63 letters, digits, '-' or '_', starting and ending with a letter or digit", c.Name)
	}
	if err := checkGroup(c.ResourceGroup); err != nil {
		return err
	}
	if err := checkRegion(c.Location); err != nil {
		return err
	}
	minor, err := kubernetesMinor(c.KubernetesVersion)
	if err != nil {
		return err
	}
	bp, np := c.BootstrapProfile, c.NetworkProfile
	switch bp.ArtifactSource {
	case SourceDirect, SourceCache:
	default:
		return invalid(CodeInvalidParameter, "bootstrap artifact source %q must be Direct or Cache", bp.ArtifactSource)
	}
	switch np.OutboundType {
	case OutboundNone, OutboundBlock, OutboundLoadBalancer, OutboundUDR:
	default:
		return invalid(CodeInvalidParameter, "outbound type %q must be none, block, loadBalancer or userDefinedRouting", np.OutboundType)
	}
	switch np.NetworkPlugin {
	case "azure", "kubenet", "none":
	default:
		return invalid(CodeInvalidParameter, "network plugin %q must be azure, kubenet or none", np.NetworkPlugin)
	}
	switch c.NodeOSUpgradeChannel {
	case "NodeImage", "None", "Unmanaged", "SecurityPatch":
	default:
		return invalid(CodeInvalidParameter, "node OS upgrade channel %q must be NodeImage, None, Unmanaged or SecurityPatch", c.NodeOSUpgradeChannel)
	}
	if len(c.AgentPools) == 0 {
		return invalid(CodeInvalidParameter, "a cluster needs at least one node pool")
	}
	seen := map[string]bool{}
	for _, p := range c.AgentPools {
		if err := checkPool(p); err != nil {
			return err
		}
		if seen[p.Name] {
			return conflict(CodeAlreadyExists, "node pool %s already exists in cluster %s", p.Name, c.Name)
		}
		seen[p.Name] = true
	}
	if noEgress(np.OutboundType) && bp.ArtifactSource != SourceCache {
		return invalid(CodeOutboundNeedsCache, "outbound type %s leaves nodes no route to mcr.microsoft.com: it needs bootstrap artifact source Cache (a private registry)", np.OutboundType)
	}
	if np.OutboundType == OutboundBlock && c.byoVNet() {
		return invalid(CodeBlockWithCustomVNet, "outbound type block is supported only with the AKS-managed virtual network, not with a bring-your-own subnet (--vnet-subnet-id)")
	}
	if !c.isolated() {
		return nil
	}
	if minor < MinKubernetesMinor {
		return invalid(CodeKubernetesVersion, "network isolated clusters need Kubernetes 1.%d or later; %s is not supported", MinKubernetesMinor, c.KubernetesVersion)
	}
	if ch := c.NodeOSUpgradeChannel; ch != "NodeImage" && ch != "None" {
		return invalid(CodeUpgradeChannel, "network isolated clusters support only the NodeImage (or None) node OS upgrade channel, not %s: packages cannot be upgraded without egress", ch)
	}
	for _, p := range c.AgentPools {
		if strings.EqualFold(p.OSType, "Windows") {
			return invalid(CodeWindowsPool, "network isolated clusters do not support Windows node pools (pool %s)", p.Name)
		}
	}
	if np.NetworkPlugin == "kubenet" {
		return invalid(CodeKubenet, "network isolated clusters do not support the kubenet network plugin: use azure (overlay) or none")
	}
	for _, e := range c.Extensions {
		if name, bad := unsupportedExtensions[normaliseExtension(e)]; bad {
			return invalid(CodeExtension, "the %s extension (%s) is not supported on network isolated clusters", name, e)
		}
	}
	return nil
}

func checkPool(p AgentPool) error {
	if !poolNameRE.MatchString(p.Name) {
		return invalid(CodeInvalidParameter, "node pool name %q must be 1-12 lowercase letters and digits, starting with a letter", p.Name)
	}
	if p.OSType != "Linux" && p.OSType != "Windows" {
		return invalid(CodeInvalidParameter, "node pool %s: OS type %q must be Linux or Windows", p.Name, p.OSType)
	}
	if p.Count < 0 || p.Count > 1000 {
		return invalid(CodeInvalidParameter, "node pool %s: node count %d must be 0-1000", p.Name, p.Count)
	}
	return nil
}

func kubernetesMinor(v string) (int, error) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil || m[1] != "1" {
		return 0, invalid(CodeInvalidParameter, "Kubernetes version %q must look like 1.30 or 1.30.3", v)
	}
	return strconv.Atoi(m[2])
}

// checkRegistry checks that a cluster bootstrapping from Cache can use its
// registry: it exists, belongs to no other cluster, holds the exact rule
// aks-managed-mcr, and has a private endpoint. Problems of a
// bring-your-own registry are the user's to fix; managed ones are repaired
// by reconcile.
func (s *Service) checkRegistry(st *State, c *Cluster) error {
	id := c.BootstrapProfile.ContainerRegistryID
	if id == "" {
		return invalid(CodeRegistryNotUsable, "bootstrap artifact source Cache needs a registry: give --bootstrap-container-registry-resource-id or let AKS manage one")
	}
	reg, err := lookupRegistry(st, id)
	if err != nil {
		return invalid(CodeRegistryNotUsable, "bootstrap artifact source Cache needs a usable registry: %v", err)
	}
	if reg.ManagedBy != "" && reg.ManagedBy != c.Name {
		return invalid(CodeRegistryNotUsable, "registry %s is managed by cluster %s and cannot bootstrap cluster %s", reg.Name, reg.ManagedBy, c.Name)
	}
	if problem := s.registryProblem(st, reg); problem != nil {
		return problem
	}
	return nil
}

// registryProblem reports what keeps a registry from serving nodes.
func (s *Service) registryProblem(st *State, reg *Registry) error {
	want := requiredRule()
	found := false
	for _, r := range s.rulesOf(reg) {
		if !strings.EqualFold(r.Name, RequiredRuleName) {
			continue
		}
		found = true
		if r.Source != want.Source || r.Target != want.Target || r.CredentialSet != "" {
			return invalid(CodeRequiredRuleModified, "registry %s: cache rule %s was modified (%s → %s%s); it must be exactly %s → %s with no credential set",
				reg.Name, RequiredRuleName, r.Source, r.Target, credNote(r.CredentialSet), want.Source, want.Target)
		}
	}
	if !found {
		return invalid(CodeRequiredRuleMissing, "registry %s lacks the cache rule %s (%s → %s) that network isolated clusters pull through",
			reg.Name, RequiredRuleName, want.Source, want.Target)
	}
	if len(endpointsOf(st, reg.Name)) == 0 {
		return invalid(CodePrivateEndpointMissing, "registry %s has no private endpoint: nodes without egress cannot reach it", reg.Name)
	}
	return nil
}

func credNote(cs string) string {
	if cs == "" {
		return ""
	}
	return fmt.Sprintf(", credential set %s", cs)
}
