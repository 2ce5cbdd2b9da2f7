package deploy

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
)

// RegistrySpec creates a bring-your-own registry.
type RegistrySpec struct {
	Name          string `json:"name"`
	ResourceGroup string `json:"resourceGroup,omitempty"`
	Location      string `json:"location,omitempty"`
}

// RegistryInfo is a registry with its private endpoints and DNS records.
type RegistryInfo struct {
	Registry
	// Served is true for the registry this process is the data plane of.
	Served           bool              `json:"served"`
	PrivateEndpoints []PrivateEndpoint `json:"privateEndpoints"`
	DNSRecords       []DNSRecord       `json:"dnsRecords"`
}

// DeleteReport lists what a delete removed and what it left alone.
type DeleteReport struct {
	Deleted  []string `json:"deleted"`
	Kept     []string `json:"kept,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// CreateRegistry creates a bring-your-own registry, with no rules. Add the
// rule aks-managed-mcr and a private endpoint before a cluster uses it.
func (s *Service) CreateRegistry(ctx context.Context, spec RegistrySpec) (*RegistryInfo, error) {
	name := strings.ToLower(spec.Name)
	if err := checkRegistryName(name); err != nil {
		return nil, err
	}
	if spec.ResourceGroup == "" {
		spec.ResourceGroup = DefaultResourceGroup
	}
	if err := checkGroup(spec.ResourceGroup); err != nil {
		return nil, err
	}
	if spec.Location == "" {
		spec.Location = s.Binding().Region
	}
	if err := checkRegion(spec.Location); err != nil {
		return nil, err
	}
	var out *RegistryInfo
	err := s.update(ctx, func(st *State) error {
		if _, ok := st.Registries[name]; ok {
			return conflict(CodeAlreadyExists, "registry %s already exists", name)
		}
		st.Registries[name] = &Registry{
			ID: RegistryID(spec.ResourceGroup, name), Name: name, ResourceGroup: spec.ResourceGroup,
			Location: spec.Location, LoginServer: name + ".azurecr.io", Created: s.now().UTC(),
			CacheRules: []CacheRule{}, CredentialSets: []CredentialSet{},
		}
		out = s.info(st, st.Registries[name])
		return nil
	})
	return out, err
}

// Registry returns a registry by name or resource ID.
func (s *Service) Registry(ctx context.Context, nameOrID string) (*RegistryInfo, error) {
	return viewOne(ctx, s, lookupRegistry, nameOrID, s.info)
}

// Registries lists every registry.
func (s *Service) Registries(ctx context.Context) ([]*RegistryInfo, error) {
	return viewed(ctx, s, func(st *State) ([]*RegistryInfo, error) {
		return inKeyOrder(st.Registries, func(reg *Registry) *RegistryInfo { return s.info(st, reg) }), nil
	})
}

// DeleteRegistry deletes a registry with its rules and credential sets.
// Private endpoints and DNS records are separate resources and stay. An
// AKS-managed registry is recreated by the next reconcile.
func (s *Service) DeleteRegistry(ctx context.Context, name string) (*DeleteReport, error) {
	return s.deleting(ctx, func(st *State, rep *DeleteReport) error {
		reg, err := lookupRegistry(st, name)
		if err != nil {
			return err
		}
		delete(st.Registries, reg.Name)
		rep.Deleted = append(rep.Deleted, reg.ID)
		for _, c := range usersOf(st, reg) {
			if reg.ManagedBy == c.Name {
				rep.Warnings = append(rep.Warnings, "registry "+reg.Name+" is managed by cluster "+c.Name+": reconcile recreates it")
			} else {
				rep.Warnings = append(rep.Warnings, "cluster "+c.Name+" bootstraps from registry "+reg.Name+": its nodes can no longer pull")
			}
		}
		return nil
	})
}

// info builds a registry's answer: passwords hidden, and for the bound
// registry the configuration file's rules it also serves.
func (s *Service) info(st *State, reg *Registry) *RegistryInfo {
	out := &RegistryInfo{Registry: *reg, PrivateEndpoints: []PrivateEndpoint{}, DNSRecords: []DNSRecord{}}
	out.Served = s.bind.Registry != "" && reg.Name == s.bind.Registry
	out.CacheRules = s.rulesOf(reg)
	out.CredentialSets = make([]CredentialSet, 0, len(reg.CredentialSets))
	for _, cs := range reg.CredentialSets {
		out.CredentialSets = append(out.CredentialSets, redact(cs))
	}
	for _, pe := range endpointsOf(st, reg.Name) {
		out.PrivateEndpoints = append(out.PrivateEndpoints, *pe)
	}
	for _, k := range sortedKeys(st.Records) {
		if r := st.Records[k]; r.Registry == reg.Name {
			out.DNSRecords = append(out.DNSRecords, *r)
		}
	}
	return out
}

// rulesOf is the registry's rules as served: its own, plus the base rules
// when it is the bound registry.
func (s *Service) rulesOf(reg *Registry) []CacheRule {
	out := make([]CacheRule, 0, len(reg.CacheRules))
	seen := map[string]bool{}
	for _, r := range reg.CacheRules {
		r.Registry = reg.Name
		out = append(out, r)
		seen[strings.ToLower(r.Name)] = true
	}
	if reg.Name == s.bind.Registry {
		for _, b := range s.bind.BaseRules {
			if !seen[strings.ToLower(b.Name)] {
				r := CacheRule{Rule: b}
				r.Registry, r.FromConfig = reg.Name, true
				out = append(out, r)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func redact(cs CredentialSet) CredentialSet {
	if cs.Password != "" {
		cs.Password = "<redacted>"
	}
	return cs
}

func lookupRegistry(st *State, nameOrID string) (*Registry, error) {
	name, err := registryNameFromID(nameOrID)
	if err != nil {
		return nil, err
	}
	reg, ok := st.Registries[name]
	if !ok {
		return nil, notFound("registry %s not found", name)
	}
	return reg, nil
}

func lookupCluster(st *State, name string) (*Cluster, error) {
	c, ok := st.Clusters[name]
	if !ok {
		return nil, notFound("cluster %s not found", name)
	}
	return c, nil
}

// endpointsOf lists a registry's private endpoints by name.
func endpointsOf(st *State, registry string) []*PrivateEndpoint {
	var out []*PrivateEndpoint
	for _, k := range sortedKeys(st.Endpoints) {
		if pe := st.Endpoints[k]; pe.Registry == registry {
			out = append(out, pe)
		}
	}
	return out
}

// primaryEndpoint is the private endpoint nodes use: the AKS-managed one
// if there is one, else the first by name; nil if there is none.
func primaryEndpoint(st *State, registry string) *PrivateEndpoint {
	pes := endpointsOf(st, registry)
	for _, pe := range pes {
		if pe.ManagedBy != "" {
			return pe
		}
	}
	if len(pes) == 0 {
		return nil
	}
	return pes[0]
}

// usersOf lists clusters whose bootstrap profile or nodes use a registry.
func usersOf(st *State, reg *Registry) []*Cluster {
	var out []*Cluster
	for _, k := range sortedKeys(st.Clusters) {
		c := st.Clusters[k]
		if c.uses(reg.Name) {
			out = append(out, c)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// inKeyOrder is fn of each value of m, in the order of m's keys; never nil.
func inKeyOrder[V, T any](m map[string]V, fn func(V) T) []T {
	out := make([]T, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, fn(m[k]))
	}
	return out
}
