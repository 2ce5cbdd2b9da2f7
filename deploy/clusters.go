package deploy

import (
	"context"
	"fmt"
	"strings"
)

// Defaults of a new cluster.
const (
	DefaultKubernetesVersion = "1.31.3"
	DefaultPoolName          = "nodepool1"
	DefaultNodeCount         = 3
)

// ClusterSpec creates a cluster. Empty fields take AKS's defaults;
// NetworkIsolated makes the defaults Cache and none, and refuses others.
type ClusterSpec struct {
	Name                 string         `json:"name"`
	ResourceGroup        string         `json:"resourceGroup,omitempty"`
	Location             string         `json:"location,omitempty"`
	KubernetesVersion    string         `json:"kubernetesVersion,omitempty"`
	NetworkIsolated      bool           `json:"networkIsolated,omitempty"`
	OutboundType         string         `json:"outboundType,omitempty"`
	NetworkPlugin        string         `json:"networkPlugin,omitempty"`
	NodeOSUpgradeChannel string         `json:"nodeOSUpgradeChannel,omitempty"`
	ArtifactSource       string         `json:"bootstrapArtifactSource,omitempty"`
	ContainerRegistryID  string         `json:"bootstrapContainerRegistryId,omitempty"`
	Extensions           []string       `json:"extensions,omitempty"`
	NodePools            []NodePoolSpec `json:"nodePools,omitempty"`
	// ManagedRegistryName names the registry AKS creates when Cache has no
	// registry ID; it must contain "bootstrap". Empty picks this process's
	// bound registry if that name is free and contains "bootstrap", so that
	// the cluster's nodes pull from this process; else a derived name.
	ManagedRegistryName string `json:"managedRegistryName,omitempty"`
}

// NodePoolSpec adds a node pool.
type NodePoolSpec struct {
	Name         string `json:"name"`
	OSType       string `json:"osType,omitempty"`
	Count        int    `json:"count,omitempty"`
	VnetSubnetID string `json:"vnetSubnetId,omitempty"`
}

// ClusterUpdate changes a cluster; empty fields are left as they are.
type ClusterUpdate struct {
	OutboundType         string   `json:"outboundType,omitempty"`
	ArtifactSource       string   `json:"bootstrapArtifactSource,omitempty"`
	ContainerRegistryID  string   `json:"bootstrapContainerRegistryId,omitempty"`
	KubernetesVersion    string   `json:"kubernetesVersion,omitempty"`
	NodeOSUpgradeChannel string   `json:"nodeOSUpgradeChannel,omitempty"`
	NetworkPlugin        string   `json:"networkPlugin,omitempty"`
	EnableExtensions     []string `json:"enableExtensions,omitempty"`
	DisableExtensions    []string `json:"disableExtensions,omitempty"`
}

// ClusterInfo is a cluster with what follows from it.
type ClusterInfo struct {
	Cluster
	// NetworkIsolated: bootstrap from Cache with outbound type none or block.
	NetworkIsolated bool `json:"networkIsolated"`
	// BootstrapRegistry is the registry new nodes pull from, if Cache.
	BootstrapRegistry *RegistryRef `json:"bootstrapRegistry,omitempty"`
	// NodesNeedingReimage were imaged with another bootstrap profile: the
	// current one applies to them only once reimaged.
	NodesNeedingReimage []string `json:"nodesNeedingReimage"`
	Warnings            []string `json:"warnings,omitempty"`
}

// RegistryRef summarises a cluster's bootstrap registry.
type RegistryRef struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Managed  bool   `json:"managed"`
	Served   bool   `json:"served"`
	Endpoint string `json:"endpoint,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// CreateCluster creates a cluster. With Cache and no registry ID, AKS
// creates a managed registry with the rule, private endpoint and DNS
// records, and reconciles them from then on.
func (s *Service) CreateCluster(ctx context.Context, spec ClusterSpec) (*ClusterInfo, error) {
	proto, err := s.newCluster(spec)
	if err != nil {
		return nil, err
	}
	var out *ClusterInfo
	err = s.update(ctx, func(st *State) error {
		c := proto.clone() // setBootstrap and reconcile change it
		if _, ok := st.Clusters[c.Name]; ok {
			return conflict(CodeAlreadyExists, "cluster %s already exists", c.Name)
		}
		if err := s.setBootstrap(st, c, spec.ContainerRegistryID, spec.ManagedRegistryName); err != nil {
			return err
		}
		for i := range c.AgentPools {
			c.AgentPools[i].NodeImageBootstrap = c.BootstrapProfile
		}
		st.Clusters[c.Name] = c
		s.reconcileCluster(st, c)
		if c.BootstrapProfile.ArtifactSource == SourceCache {
			if err := s.checkRegistry(st, c); err != nil {
				return err
			}
		}
		out = s.clusterInfo(st, c)
		return nil
	})
	return out, err
}

func (s *Service) newCluster(spec ClusterSpec) (*Cluster, error) {
	c := &Cluster{
		Name: spec.Name, ResourceGroup: spec.ResourceGroup, Location: spec.Location,
		KubernetesVersion: spec.KubernetesVersion, NodeOSUpgradeChannel: spec.NodeOSUpgradeChannel,
		NetworkProfile:   NetworkProfile{OutboundType: spec.OutboundType, NetworkPlugin: spec.NetworkPlugin},
		BootstrapProfile: BootstrapProfile{ArtifactSource: spec.ArtifactSource},
		Extensions:       spec.Extensions, Created: s.now().UTC(),
	}
	if spec.NetworkIsolated {
		if c.BootstrapProfile.ArtifactSource == SourceDirect {
			return nil, invalid(CodeInvalidParameter, "a network isolated cluster bootstraps from Cache, not Direct")
		}
		if o := c.NetworkProfile.OutboundType; o != "" && !noEgress(o) {
			return nil, invalid(CodeInvalidParameter, "a network isolated cluster has outbound type none or block, not %s", o)
		}
		c.BootstrapProfile.ArtifactSource = SourceCache
		if c.NetworkProfile.OutboundType == "" {
			c.NetworkProfile.OutboundType = OutboundNone
		}
	}
	defaults := []struct {
		v   *string
		def string
	}{
		{&c.ResourceGroup, DefaultResourceGroup},
		{&c.Location, s.Binding().Region},
		{&c.KubernetesVersion, DefaultKubernetesVersion},
		{&c.NodeOSUpgradeChannel, "NodeImage"},
		{&c.NetworkProfile.OutboundType, OutboundLoadBalancer},
		{&c.NetworkProfile.NetworkPlugin, "azure"},
		{&c.BootstrapProfile.ArtifactSource, SourceDirect},
	}
	for _, d := range defaults {
		if *d.v == "" {
			*d.v = d.def
		}
	}
	if spec.ContainerRegistryID != "" && c.BootstrapProfile.ArtifactSource != SourceCache {
		return nil, invalid(CodeInvalidParameter, "a bootstrap container registry needs bootstrap artifact source Cache")
	}
	c.ID = clusterID(c.ResourceGroup, c.Name)
	c.NodeResourceGroup = fmt.Sprintf("MC_%s_%s_%s", c.ResourceGroup, c.Name, c.Location)
	pools := spec.NodePools
	if len(pools) == 0 {
		pools = []NodePoolSpec{{}}
	}
	for _, p := range pools {
		c.AgentPools = append(c.AgentPools, newPool(p))
	}
	if err := validateCluster(c); err != nil {
		return nil, err
	}
	return c, nil
}

func newPool(p NodePoolSpec) AgentPool {
	if p.Name == "" {
		p.Name = DefaultPoolName
	}
	if p.OSType == "" {
		p.OSType = "Linux"
	}
	if strings.EqualFold(p.OSType, "linux") {
		p.OSType = "Linux"
	} else if strings.EqualFold(p.OSType, "windows") {
		p.OSType = "Windows"
	}
	if p.Count == 0 {
		p.Count = DefaultNodeCount
	}
	return AgentPool{Name: p.Name, Count: p.Count, OSType: p.OSType, VnetSubnetID: p.VnetSubnetID}
}

// setBootstrap points a Cache cluster at its registry: the one named by id
// (bring your own), else a managed one, kept if the cluster has one.
func (s *Service) setBootstrap(st *State, c *Cluster, id, managedName string) error {
	bp := &c.BootstrapProfile
	if bp.ArtifactSource != SourceCache {
		bp.ContainerRegistryID = ""
		return nil
	}
	if id != "" {
		reg, err := lookupRegistry(st, id)
		if err != nil {
			return invalid(CodeRegistryNotUsable, "bootstrap artifact source Cache needs a usable registry: %v", err)
		}
		bp.ContainerRegistryID = reg.ID
		return nil
	}
	if cur := s.currentManaged(st, c); cur != "" {
		bp.ContainerRegistryID = RegistryID(c.NodeResourceGroup, cur)
		return nil
	}
	if bp.ContainerRegistryID != "" {
		return nil // bring your own, unchanged
	}
	if n := len(c.ManagedRegistries); n > 0 {
		// Back to Cache before the nodes were reimaged: reuse the registry.
		bp.ContainerRegistryID = RegistryID(c.NodeResourceGroup, c.ManagedRegistries[n-1])
		return nil
	}
	name, err := s.pickManagedName(st, c, managedName)
	if err != nil {
		return err
	}
	c.ManagedRegistries = append(c.ManagedRegistries, name)
	bp.ContainerRegistryID = RegistryID(c.NodeResourceGroup, name)
	return nil
}

// currentManaged is the managed registry the bootstrap profile names, if any.
func (s *Service) currentManaged(st *State, c *Cluster) string {
	for _, n := range c.ManagedRegistries {
		if RegistryID(c.NodeResourceGroup, n) == c.BootstrapProfile.ContainerRegistryID {
			return n
		}
	}
	return ""
}

func (s *Service) pickManagedName(st *State, c *Cluster, name string) (string, error) {
	taken := func(n string) bool {
		if _, ok := st.Registries[n]; ok {
			return true
		}
		for _, o := range st.Clusters {
			for _, m := range o.ManagedRegistries {
				if m == n {
					return true
				}
			}
		}
		return false
	}
	if name != "" {
		name = strings.ToLower(name)
		if err := checkRegistryName(name); err != nil {
			return "", err
		}
		if !strings.Contains(name, "bootstrap") {
			return "", invalid(CodeInvalidParameter, "an AKS-managed registry's name contains \"bootstrap\"; %q does not", name)
		}
		if taken(name) {
			return "", conflict(CodeAlreadyExists, "registry %s already exists", name)
		}
		return name, nil
	}
	if b := s.bind.Registry; b != "" && strings.Contains(b, "bootstrap") && !taken(b) {
		return b, nil
	}
	name = managedRegistryName(c.Name)
	if taken(name) {
		return "", conflict(CodeAlreadyExists, "registry %s already exists", name)
	}
	return name, nil
}

// Cluster returns a cluster.
func (s *Service) Cluster(ctx context.Context, name string) (*ClusterInfo, error) {
	return viewOne(ctx, s, lookupCluster, name, s.clusterInfo)
}

// Clusters lists every cluster.
func (s *Service) Clusters(ctx context.Context) ([]*ClusterInfo, error) {
	return viewed(ctx, s, func(st *State) ([]*ClusterInfo, error) {
		return inKeyOrder(st.Clusters, func(c *Cluster) *ClusterInfo { return s.clusterInfo(st, c) }), nil
	})
}

// DeleteCluster deletes a cluster and the registries, private endpoints
// and DNS records AKS created for it. A bring-your-own registry, its rules,
// endpoints, records and content stay.
func (s *Service) DeleteCluster(ctx context.Context, name string) (*DeleteReport, error) {
	return s.deleting(ctx, func(st *State, rep *DeleteReport) error {
		c, err := lookupCluster(st, name)
		if err != nil {
			return err
		}
		delete(st.Clusters, name)
		rep.Deleted = append(rep.Deleted, c.ID)
		for _, m := range c.ManagedRegistries {
			for _, r := range deleteManaged(st, c, m) {
				rep.Deleted = append(rep.Deleted, r.Name)
			}
		}
		for _, n := range c.registryNames() {
			if reg, ok := st.Registries[n]; ok && reg.ManagedBy == "" {
				rep.Kept = append(rep.Kept, reg.ID)
			}
		}
		return nil
	})
}
