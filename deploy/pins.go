package deploy

import (
	"sort"

	"github.com/airlock/airlock/deploy/aks"
	"go.uber.org/zap"
)

// PinOwnerPrefix starts the owner of every pin the control module sets;
// the rest is the cluster's name.
const PinOwnerPrefix = "cluster/"

// Pinner keeps image sets from eviction, grouped by owner. The cache's
// collector implements it.
type Pinner interface {
	// SyncPins makes the pins whose owner starts with prefix exactly want
	// (owner -> local image references), adding and removing as needed.
	SyncPins(prefix string, want map[string][]string) error
}

// BootstrapImages lists the local references (under
// aks-managed-repository/) a node of a Kubernetes version pulls at
// bootstrap.
type BootstrapImages func(kubernetesVersion string) ([]string, error)

// NodeBootstrapImages is the BootstrapImages of AKS: what deploy/aks lists
// for the version ("1.31" or "1.31.3"), as local references under
// aks-managed-repository/, the way nodes pull them through the required
// rule. A version deploy/aks does not know is an error wrapping
// aks.ErrUnsupported.
func NodeBootstrapImages(kubernetesVersion string) ([]string, error) {
	refs, err := aks.Bootstrap(kubernetesVersion)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = MirrorRepository + "/" + r.String()
	}
	return out, nil
}

// syncPins pins the bootstrap images of every cluster whose nodes pull
// from the bound registry (its bootstrap profile, or a node pool not yet
// reimaged away from it), and unpins the rest. Called with s.mu held,
// after every change.
func (s *Service) syncPins(st *State) {
	if s.bind.Pins == nil || s.bind.Bootstrap == nil || s.bind.Registry == "" {
		return
	}
	want := map[string][]string{}
	for _, name := range sortedKeys(st.Clusters) {
		c := st.Clusters[name]
		if !s.pullsFromBound(c) {
			continue
		}
		refs, err := s.bind.Bootstrap(c.KubernetesVersion)
		if err != nil {
			s.log.Warn("cannot pin bootstrap images", zap.String("cluster", name), zap.Error(err))
			continue
		}
		sort.Strings(refs)
		want[PinOwnerPrefix+name] = refs
	}
	if err := s.bind.Pins.SyncPins(PinOwnerPrefix, want); err != nil {
		s.log.Error("pin bootstrap images", zap.Error(err))
	}
}

// pullsFromBound reports whether some node of c bootstraps from the bound
// registry.
func (s *Service) pullsFromBound(c *Cluster) bool {
	uses := func(p BootstrapProfile) bool {
		if p.ArtifactSource != SourceCache {
			return false
		}
		name, err := registryNameFromID(p.ContainerRegistryID)
		return err == nil && name == s.bind.Registry
	}
	if uses(c.BootstrapProfile) {
		return true
	}
	for _, p := range c.AgentPools {
		if uses(p.NodeImageBootstrap) {
			return true
		}
	}
	return false
}
