package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/airlock/airlock/deploy/aks"
)

// UpdateCluster changes a cluster. A bootstrap profile change applies to
// reimaged nodes only: ClusterInfo.NodesNeedingReimage lists the others.
// Switching to Direct or to another registry deletes nothing at once; a
// managed registry is deleted once no node pulls from it (SPEC §1), a
// bring-your-own one never.
func (s *Service) UpdateCluster(ctx context.Context, name string, u ClusterUpdate) (*ClusterInfo, error) {
	return s.updateCluster(ctx, name, func(st *State, c *Cluster) error {
		before := c.BootstrapProfile
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&c.NetworkProfile.OutboundType, u.OutboundType)
		set(&c.NetworkProfile.NetworkPlugin, u.NetworkPlugin)
		set(&c.KubernetesVersion, u.KubernetesVersion)
		set(&c.NodeOSUpgradeChannel, u.NodeOSUpgradeChannel)
		set(&c.BootstrapProfile.ArtifactSource, u.ArtifactSource)
		if u.ContainerRegistryID != "" && c.BootstrapProfile.ArtifactSource != SourceCache {
			return invalid(CodeInvalidParameter, "a bootstrap container registry needs bootstrap artifact source Cache")
		}
		for _, e := range u.EnableExtensions {
			if !slices.Contains(c.Extensions, e) {
				c.Extensions = append(c.Extensions, e)
			}
		}
		c.Extensions = slices.DeleteFunc(c.Extensions, func(e string) bool { return slices.Contains(u.DisableExtensions, e) })
		if err := s.setBootstrap(st, c, u.ContainerRegistryID, ""); err != nil {
			return err
		}
		if err := validateCluster(c); err != nil {
			return err
		}
		s.reconcileCluster(st, c)
		// A new bootstrap registry must be usable; problems of the current
		// one do not block unrelated updates (cluster show reports them).
		if c.BootstrapProfile.ArtifactSource == SourceCache && c.BootstrapProfile != before {
			return s.checkRegistry(st, c)
		}
		return nil
	})
}

// AddNodePool adds a node pool, imaged with the current bootstrap profile.
func (s *Service) AddNodePool(ctx context.Context, cluster string, spec NodePoolSpec) (*ClusterInfo, error) {
	return s.updateCluster(ctx, cluster, func(_ *State, c *Cluster) error {
		p := newPool(spec)
		p.NodeImageBootstrap = c.BootstrapProfile
		c.AgentPools = append(c.AgentPools, p)
		return validateCluster(c)
	})
}

// DeleteNodePool deletes a node pool; a cluster keeps at least one.
func (s *Service) DeleteNodePool(ctx context.Context, cluster, pool string) (*ClusterInfo, error) {
	return s.updateCluster(ctx, cluster, func(st *State, c *Cluster) error {
		i := slices.IndexFunc(c.AgentPools, func(p AgentPool) bool { return p.Name == pool })
		if i < 0 {
			return notFound("node pool %s not found in cluster %s", pool, cluster)
		}
		if len(c.AgentPools) == 1 {
			return invalid(CodeInvalidParameter, "node pool %s is the cluster's last one", pool)
		}
		c.AgentPools = slices.Delete(c.AgentPools, i, i+1)
		s.reconcileCluster(st, c)
		return nil
	})
}

// UpgradeNodeImage reimages a node pool's nodes (all pools when pool is
// empty), so that they take the current bootstrap profile. A managed
// registry no node uses any more is then deleted.
func (s *Service) UpgradeNodeImage(ctx context.Context, cluster, pool string) (*ClusterInfo, error) {
	return s.updateCluster(ctx, cluster, func(st *State, c *Cluster) error {
		found := false
		for i := range c.AgentPools {
			if pool == "" || c.AgentPools[i].Name == pool {
				c.AgentPools[i].NodeImageBootstrap = c.BootstrapProfile
				found = true
			}
		}
		if !found {
			return notFound("node pool %s not found in cluster %s", pool, cluster)
		}
		s.reconcileCluster(st, c)
		return nil
	})
}

// updateCluster runs fn on the cluster named name within a state update
// (again if the update starts afresh) and returns the cluster's info after
// it. It returns a not-found error if there is no such cluster.
func (s *Service) updateCluster(ctx context.Context, name string, fn func(st *State, c *Cluster) error) (*ClusterInfo, error) {
	var out *ClusterInfo
	err := s.update(ctx, func(st *State) error {
		c, err := lookupCluster(st, name)
		if err != nil {
			return err
		}
		if err := fn(st, c); err != nil {
			return err
		}
		out = s.clusterInfo(st, c)
		return nil
	})
	return out, err
}

// clusterInfo adds what follows from the cluster's state.
func (s *Service) clusterInfo(st *State, c *Cluster) *ClusterInfo {
	out := &ClusterInfo{Cluster: *c, NodesNeedingReimage: []string{}}
	out.NetworkIsolated = c.BootstrapProfile.ArtifactSource == SourceCache && noEgress(c.NetworkProfile.OutboundType)
	stale := 0
	for _, p := range c.AgentPools {
		if p.NodeImageBootstrap == c.BootstrapProfile {
			continue
		}
		for i := 0; i < p.Count; i++ {
			out.NodesNeedingReimage = append(out.NodesNeedingReimage, fmt.Sprintf("aks-%s-vmss%06d", p.Name, i))
			stale++
		}
	}
	if stale > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("%d node(s) were imaged with another bootstrap profile: it applies to them once reimaged (cluster upgrade --node-image-only)", stale))
	}
	if noEgress(c.NetworkProfile.OutboundType) {
		for _, p := range c.AgentPools {
			if p.NodeImageBootstrap.ArtifactSource == SourceDirect && p.Count > 0 {
				out.Warnings = append(out.Warnings, fmt.Sprintf("node pool %s still bootstraps from mcr.microsoft.com (Direct) but outbound type %s gives it no egress: reimage it", p.Name, c.NetworkProfile.OutboundType))
			}
		}
	}
	if c.BootstrapProfile.ArtifactSource != SourceCache {
		return out
	}
	if _, err := aks.Lookup(c.KubernetesVersion); err != nil {
		out.Warnings = append(out.Warnings, unlistedWarning(c, err))
	}
	name, _ := registryNameFromID(c.BootstrapProfile.ContainerRegistryID)
	ref := &RegistryRef{Name: name, ID: c.BootstrapProfile.ContainerRegistryID, Managed: slices.Contains(c.ManagedRegistries, name)}
	ref.Served = name == s.bind.Registry
	if reg, ok := st.Registries[name]; ok {
		if err := s.registryProblem(st, reg); err != nil {
			ref.Problem = err.Error()
		}
		if pe := primaryEndpoint(st, name); pe != nil {
			ref.Endpoint = pe.Scheme + "://" + pe.Address
		}
	} else {
		ref.Problem = "registry " + name + " does not exist"
	}
	if ref.Managed && !ref.Served {
		out.Warnings = append(out.Warnings, fmt.Sprintf("managed registry %s is kept as data only: this airlock serves registry %q (set control.registry to serve it)", name, s.bind.Registry))
	}
	out.BootstrapRegistry = ref
	return out
}

// registryNames lists the registries the cluster's bootstrap profile and
// its nodes' images name.
func (c *Cluster) registryNames() []string {
	var out []string
	add := func(bp BootstrapProfile) {
		if bp.ArtifactSource != SourceCache || bp.ContainerRegistryID == "" {
			return
		}
		if n, err := registryNameFromID(bp.ContainerRegistryID); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	add(c.BootstrapProfile)
	for _, p := range c.AgentPools {
		add(p.NodeImageBootstrap)
	}
	return out
}

func (c *Cluster) uses(registry string) bool {
	return slices.Contains(c.registryNames(), strings.ToLower(registry))
}
