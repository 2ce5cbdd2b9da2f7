package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Repair is one thing reconcile restored, reset or removed.
type Repair struct {
	Kind   string `json:"kind"` // registry, cacheRule, privateEndpoint, dnsRecord
	Name   string `json:"name"`
	Action string `json:"action"` // restored, reset, deleted
	Detail string `json:"detail,omitempty"`
}

// ReconcileReport is what one cluster's reconcile did. Problems of
// bring-your-own registries are reported, never repaired.
type ReconcileReport struct {
	Cluster  string   `json:"cluster"`
	Repairs  []Repair `json:"repairs"`
	Problems []string `json:"problems,omitempty"`
}

// Reconcile brings the AKS-managed resources of a cluster (of every
// cluster when name is empty) back to what AKS wants — registry, rule
// aks-managed-mcr, private endpoint, DNS records — and deletes managed
// registries no node uses any more.
func (s *Service) Reconcile(ctx context.Context, name string) ([]ReconcileReport, error) {
	var reps []ReconcileReport
	err := s.update(ctx, func(st *State) error {
		names := sortedKeys(st.Clusters)
		if name != "" {
			if _, err := lookupCluster(st, name); err != nil {
				return err
			}
			names = []string{name}
		}
		reps = []ReconcileReport{}
		for _, n := range names {
			reps = append(reps, s.reconcileCluster(st, st.Clusters[n]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.m.reconciles.Inc()
	for _, r := range reps {
		for _, x := range r.Repairs {
			s.m.repairs.WithLabelValues(x.Kind, x.Action).Inc()
			s.log.Info("reconcile repaired", zap.String("cluster", r.Cluster), zap.String("kind", x.Kind),
				zap.String("name", x.Name), zap.String("action", x.Action), zap.String("detail", x.Detail))
		}
		for _, p := range r.Problems {
			s.log.Warn("bring-your-own registry problem", zap.String("cluster", r.Cluster), zap.String("problem", p))
		}
	}
	return reps, nil
}

// Run reconciles every cluster now and then every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Reconcile(ctx, ""); err != nil && ctx.Err() == nil {
			s.log.Error("reconcile failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcileCluster repairs the cluster's managed registries in st.
func (s *Service) reconcileCluster(st *State, c *Cluster) ReconcileReport {
	rep := ReconcileReport{Cluster: c.Name, Repairs: []Repair{}}
	inUse := c.registryNames()
	var keep []string
	for _, m := range c.ManagedRegistries {
		if !slices.Contains(inUse, m) {
			rep.Repairs = append(rep.Repairs, deleteManaged(st, c, m)...)
			continue
		}
		keep = append(keep, m)
		reps, problem := s.ensureManaged(st, c, m)
		rep.Repairs = append(rep.Repairs, reps...)
		if problem != "" {
			rep.Problems = append(rep.Problems, problem)
		}
	}
	c.ManagedRegistries = keep
	for _, n := range inUse {
		if slices.Contains(keep, n) {
			continue
		}
		reg, ok := st.Registries[n]
		if !ok {
			rep.Problems = append(rep.Problems, fmt.Sprintf("registry %s does not exist: nodes cannot bootstrap", n))
			continue
		}
		if err := s.registryProblem(st, reg); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		}
	}
	return rep
}

// ensureManaged restores managed registry m of cluster c and what belongs
// to it, and reports each repair.
func (s *Service) ensureManaged(st *State, c *Cluster, m string) ([]Repair, string) {
	var out []Repair
	reg, ok := st.Registries[m]
	if !ok {
		reg = &Registry{
			ID: RegistryID(c.NodeResourceGroup, m), Name: m, ResourceGroup: c.NodeResourceGroup, Location: c.Location,
			LoginServer: m + ".azurecr.io", ManagedBy: c.Name, Created: s.now().UTC(),
			CacheRules: []CacheRule{requiredRule()}, CredentialSets: []CredentialSet{},
		}
		st.Registries[m] = reg
		out = append(out, Repair{Kind: "registry", Name: m, Action: "restored", Detail: "registry was missing; recreated with cache rule " + RequiredRuleName})
	} else if reg.ManagedBy != c.Name {
		return nil, fmt.Sprintf("registry %s exists but is not managed by cluster %s: left alone", m, c.Name)
	}
	want := requiredRule()
	i := slices.IndexFunc(reg.CacheRules, func(r CacheRule) bool { return strings.EqualFold(r.Name, RequiredRuleName) })
	switch {
	case i < 0:
		reg.CacheRules = append(reg.CacheRules, want)
		if _, err := ruleSet(reg); err != nil {
			reg.CacheRules = reg.CacheRules[:len(reg.CacheRules)-1]
			return out, fmt.Sprintf("registry %s: cannot restore cache rule %s: %v", m, RequiredRuleName, err)
		}
		out = append(out, Repair{Kind: "cacheRule", Name: m + "/" + RequiredRuleName, Action: "restored", Detail: "rule was deleted"})
	case reg.CacheRules[i] != want:
		got := reg.CacheRules[i]
		reg.CacheRules[i] = want
		out = append(out, Repair{Kind: "cacheRule", Name: m + "/" + RequiredRuleName, Action: "reset",
			Detail: fmt.Sprintf("rule was modified (%s → %s%s, tagTTL %s)", got.Source, got.Target, credNote(got.CredentialSet), time.Duration(got.TagTTL))})
	}
	addr, scheme := s.endpointAddress(m)
	peName := m + "-pe"
	pe, ok := st.Endpoints[peName]
	if ok && s.atReplica(pe, m, scheme) {
		addr = pe.Address // another replica of this registry: leave it there
	}
	switch {
	case !ok:
		st.Endpoints[peName] = &PrivateEndpoint{ID: endpointID(c.NodeResourceGroup, peName), Name: peName, Registry: m, Address: addr, Scheme: scheme, ManagedBy: c.Name}
		out = append(out, Repair{Kind: "privateEndpoint", Name: peName, Action: "restored", Detail: "endpoint was missing; points at " + scheme + "://" + addr})
	case pe.Address != addr || pe.Scheme != scheme || pe.Registry != m:
		out = append(out, Repair{Kind: "privateEndpoint", Name: peName, Action: "reset", Detail: fmt.Sprintf("endpoint pointed at %s://%s (registry %s), now %s://%s", pe.Scheme, pe.Address, pe.Registry, scheme, addr)})
		pe.Address, pe.Scheme, pe.Registry, pe.ManagedBy = addr, scheme, m, c.Name
	}
	for _, r := range wantRecords(reg, addr, c.Name) {
		got, ok := st.Records[r.key()]
		switch {
		case !ok:
			st.Records[r.key()] = r
			out = append(out, Repair{Kind: "dnsRecord", Name: r.FQDN(), Action: "restored", Detail: "A record was missing; points at " + r.Address})
		case got.Address != r.Address || got.Type != "A":
			out = append(out, Repair{Kind: "dnsRecord", Name: r.FQDN(), Action: "reset", Detail: fmt.Sprintf("A record pointed at %s, now %s", got.Address, r.Address)})
			st.Records[r.key()] = r
		}
	}
	return out, ""
}

// atReplica reports whether private endpoint pe of registry m, the bound
// one, points at another live replica serving it (Binding.Replica) with
// the scheme this one would use.
func (s *Service) atReplica(pe *PrivateEndpoint, m, scheme string) bool {
	return m == s.bind.Registry && s.bind.Replica != nil && pe.Registry == m && pe.Scheme == scheme &&
		pe.Address != s.bind.Address && s.bind.Replica(pe.Address)
}

// deleteManaged deletes managed registry m of cluster c, its managed
// private endpoints and DNS records.
func deleteManaged(st *State, c *Cluster, m string) []Repair {
	const why = "no node of the cluster pulls from it any more"
	var out []Repair
	if reg, ok := st.Registries[m]; ok && reg.ManagedBy == c.Name {
		delete(st.Registries, m)
		out = append(out, Repair{Kind: "registry", Name: reg.ID, Action: "deleted", Detail: why})
	}
	for _, k := range sortedKeys(st.Endpoints) {
		if pe := st.Endpoints[k]; pe.Registry == m && pe.ManagedBy == c.Name {
			delete(st.Endpoints, k)
			out = append(out, Repair{Kind: "privateEndpoint", Name: pe.ID, Action: "deleted", Detail: why})
		}
	}
	for _, k := range sortedKeys(st.Records) {
		if r := st.Records[k]; r.Registry == m && r.ManagedBy == c.Name {
			delete(st.Records, k)
			out = append(out, Repair{Kind: "dnsRecord", Name: r.FQDN(), Action: "deleted", Detail: why})
		}
	}
	return out
}
