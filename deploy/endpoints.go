package deploy

import (
	"context"
	"net"
	"strings"
)

// PrivateEndpointSpec creates a private endpoint for a registry.
type PrivateEndpointSpec struct {
	Name          string `json:"name"`
	Registry      string `json:"registry"` // name or resource ID
	ResourceGroup string `json:"resourceGroup,omitempty"`
	// Address is host[:port]; empty picks this process's address for the
	// bound registry, else an address in 10.224.0.0/12 (data only).
	Address string `json:"address,omitempty"`
	// Scheme is http or https; empty picks this process's scheme for the
	// bound registry, else https.
	Scheme string `json:"scheme,omitempty"`
}

// CreatePrivateEndpoint creates a private endpoint and, like a DNS zone
// group, the registry's A records in privatelink.azurecr.io.
func (s *Service) CreatePrivateEndpoint(ctx context.Context, spec PrivateEndpointSpec) (*PrivateEndpoint, error) {
	if !resourceNameRE.MatchString(spec.Name) {
		return nil, invalid(CodeInvalidParameter, "private endpoint name %q must be 1-80 letters, digits, '-', '_', '.'", spec.Name)
	}
	if spec.ResourceGroup == "" {
		spec.ResourceGroup = DefaultResourceGroup
	}
	if err := checkGroup(spec.ResourceGroup); err != nil {
		return nil, err
	}
	var out *PrivateEndpoint
	err := s.update(ctx, func(st *State) error {
		reg, err := lookupRegistry(st, spec.Registry)
		if err != nil {
			return err
		}
		if _, ok := st.Endpoints[spec.Name]; ok {
			return conflict(CodeAlreadyExists, "private endpoint %s already exists", spec.Name)
		}
		addr, scheme := s.endpointAddress(reg.Name)
		if spec.Address != "" {
			addr = spec.Address
		}
		if spec.Scheme != "" {
			scheme = spec.Scheme
		}
		if err := checkAddress(addr); err != nil {
			return err
		}
		if err := checkScheme(scheme); err != nil {
			return err
		}
		pe := &PrivateEndpoint{ID: endpointID(spec.ResourceGroup, spec.Name), Name: spec.Name, Registry: reg.Name, Address: addr, Scheme: scheme}
		st.Endpoints[pe.Name] = pe
		for _, r := range wantRecords(reg, addr, "") {
			st.Records[r.key()] = r
		}
		out = pe
		return nil
	})
	return out, err
}

// PrivateEndpoints lists private endpoints, of one registry if named.
func (s *Service) PrivateEndpoints(ctx context.Context, registry string) ([]PrivateEndpoint, error) {
	return viewed(ctx, s, func(st *State) ([]PrivateEndpoint, error) {
		out := []PrivateEndpoint{}
		name := ""
		if registry != "" {
			var err error
			if name, err = registryNameFromID(registry); err != nil {
				return out, err
			}
		}
		for _, k := range sortedKeys(st.Endpoints) {
			if pe := st.Endpoints[k]; name == "" || pe.Registry == name {
				out = append(out, *pe)
			}
		}
		return out, nil
	})
}

// DeletePrivateEndpoint deletes a private endpoint and, when it was the
// registry's last one, the registry's A records.
func (s *Service) DeletePrivateEndpoint(ctx context.Context, name string) (*DeleteReport, error) {
	return s.deleting(ctx, func(st *State, rep *DeleteReport) error {
		pe, ok := st.Endpoints[name]
		if !ok {
			return notFound("private endpoint %s not found", name)
		}
		delete(st.Endpoints, name)
		rep.Deleted = append(rep.Deleted, pe.ID)
		if len(endpointsOf(st, pe.Registry)) == 0 {
			for _, k := range sortedKeys(st.Records) {
				if r := st.Records[k]; r.Registry == pe.Registry {
					delete(st.Records, k)
					rep.Deleted = append(rep.Deleted, r.FQDN())
				}
			}
		}
		return nil
	})
}

// DNSRecords lists the A records of the private DNS zone.
func (s *Service) DNSRecords(ctx context.Context) ([]DNSRecord, error) {
	return viewed(ctx, s, func(st *State) ([]DNSRecord, error) {
		return inKeyOrder(st.Records, func(r *DNSRecord) DNSRecord { return *r }), nil
	})
}

// SetDNSRecord creates or replaces an A record in privatelink.azurecr.io.
// Its name is <registry> or <registry>.<region>.data.
func (s *Service) SetDNSRecord(ctx context.Context, rec DNSRecord) (DNSRecord, error) {
	rec.Zone, rec.Type = PrivateDNSZone, "A"
	rec.Name = strings.ToLower(rec.Name)
	rec.Registry, _, _ = strings.Cut(rec.Name, ".")
	if ip := net.ParseIP(rec.Address); ip == nil || ip.To4() == nil {
		return DNSRecord{}, invalid(CodeInvalidParameter, "an A record's address must be an IPv4 address, got %q", rec.Address)
	}
	if !resourceNameRE.MatchString(rec.Name) {
		return DNSRecord{}, invalid(CodeInvalidParameter, "record name %q must be <registry> or <registry>.<region>.data", rec.Name)
	}
	out := rec
	err := s.update(ctx, func(st *State) error {
		r := rec
		if old, ok := st.Records[r.key()]; ok {
			r.ManagedBy = old.ManagedBy
		}
		st.Records[r.key()] = &r
		out = r
		return nil
	})
	return out, err
}

// DeleteDNSRecord deletes an A record.
func (s *Service) DeleteDNSRecord(ctx context.Context, name string) error {
	key := PrivateDNSZone + "/" + strings.ToLower(name)
	return s.update(ctx, func(st *State) error {
		if _, ok := st.Records[key]; !ok {
			return notFound("DNS record %s.%s not found", name, PrivateDNSZone)
		}
		delete(st.Records, key)
		return nil
	})
}

// endpointAddress is where a new private endpoint of registry points: this
// process for the bound registry, else a made-up private address.
func (s *Service) endpointAddress(registry string) (addr, scheme string) {
	if registry == s.bind.Registry && s.bind.Address != "" {
		return s.bind.Address, s.bind.Scheme
	}
	return syntheticAddress(registry), "https"
}

// wantRecords are the registry's A records for a private endpoint address.
func wantRecords(reg *Registry, addr, managedBy string) []*DNSRecord {
	ip := hostOf(addr)
	return []*DNSRecord{
		{Zone: PrivateDNSZone, Name: reg.Name, Type: "A", Address: ip, Registry: reg.Name, ManagedBy: managedBy},
		{Zone: PrivateDNSZone, Name: reg.Name + "." + reg.Location + ".data", Type: "A", Address: ip, Registry: reg.Name, ManagedBy: managedBy},
	}
}
