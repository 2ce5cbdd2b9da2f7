package deploy

import (
	"context"
	"errors"
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
	// An error wrapping ErrPinsNotReady means it cannot yet (a replica
	// whose storage does not answer so far): the control module syncs
	// again at its next refresh.
	SyncPins(prefix string, want map[string][]string) error
}

// ErrPinsNotReady is a Pinner's refusal while its storage is not ready:
// expected at a replica's start, so it is logged at info level.
var ErrPinsNotReady = errors.New("the storage is not ready: pins are synced once it is")

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
// reimaged away from it), and unpins the rest, if the state served moved
// since the last sync (or that sync failed). On a Serializer store it
// syncs in the store's exclusive section, after reading the newest state:
// replicas sharing the pins never replace a newer state's pins with an
// older one's. It waits at most pinWait; a sync that did not happen is
// logged and retried by the next Refresh. Called without s.mu.
func (s *Service) syncPins(ctx context.Context) {
	if s.bind.Pins == nil || s.bind.Bootstrap == nil || s.bind.Registry == "" || !s.pinsDue() {
		return
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	if !s.pinsDue() {
		return // synced by another call meanwhile
	}
	ctx, cancel := context.WithTimeout(ctx, pinWait)
	defer cancel()
	ser, shared := s.store.(Serializer)
	sync := func(ctx context.Context) error {
		if shared {
			if _, err := s.refresh(ctx); err != nil {
				return err
			}
		}
		s.mu.Lock()
		gen, want := s.gen, s.wantPins(s.st)
		s.mu.Unlock()
		if err := s.bind.Pins.SyncPins(PinOwnerPrefix, want); err != nil {
			return err
		}
		s.mu.Lock()
		s.pinned = max(s.pinned, gen)
		s.mu.Unlock()
		return nil
	}
	var err error
	if shared {
		err = ser.Exclusive(ctx, sync)
	} else {
		err = sync(ctx)
	}
	switch {
	case errors.Is(err, ErrPinsNotReady):
		s.log.Info("bootstrap images are pinned once the storage is ready")
	case err != nil:
		s.log.Error("pin bootstrap images", zap.Error(err))
	}
}

// pinsDue reports whether the state served was loaded and its pins not
// synced yet.
func (s *Service) pinsDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded && s.pinned != s.gen
}

// wantPins is what st pins: owner cluster/<name> -> its bootstrap images,
// sorted, for each cluster some node of which pulls from the bound
// registry.
func (s *Service) wantPins(st *State) map[string][]string {
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
	return want
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
