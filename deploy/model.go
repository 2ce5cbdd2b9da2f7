// Package deploy is airlock's control module: it emulates the Azure resources
// a network-isolated AKS cluster needs — container registries (AKS-managed or
// bring-your-own) with their cache rules and credential sets, private
// endpoints, private DNS records and clusters with their network and bootstrap
// profiles — keeps them in a Store, enforces the feature's limitations,
// reconciles AKS-managed resources, writes the files a node needs, and hands
// the cache rules of the registry this process serves to the pull-through
// engine. It reaches the data plane only through rules and RuleSetter, the
// same API a user of the engine has.
package deploy

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/airlock/airlock/rules"
)

// Artifact sources of a bootstrap profile.
const (
	SourceDirect = "Direct" // nodes pull from mcr.microsoft.com
	SourceCache  = "Cache"  // nodes pull from a private registry's cache rule
)

// Outbound types of a network profile.
const (
	OutboundNone         = "none"
	OutboundBlock        = "block"
	OutboundLoadBalancer = "loadBalancer"
	OutboundUDR          = "userDefinedRouting"
)

// The cache rule a network-isolated cluster's registry must hold, unmodified.
const (
	RequiredRuleName   = "aks-managed-mcr"
	RequiredRuleSource = "mcr.microsoft.com/*"
	RequiredRuleTarget = "aks-managed-repository/*"
	// MirrorRepository is the namespace nodes pull mcr.microsoft.com images from.
	MirrorRepository = "aks-managed-repository"
	// MirroredHost is the registry whose pulls nodes redirect.
	MirroredHost = "mcr.microsoft.com"
	// PrivateDNSZone holds the A records of registries' private endpoints.
	PrivateDNSZone = "privatelink.azurecr.io"
)

// requiredRule is the rule AKS creates and expects, exactly.
func requiredRule() CacheRule {
	return CacheRule{Rule: rules.Rule{Name: RequiredRuleName, Source: RequiredRuleSource, Target: RequiredRuleTarget}}
}

// Registry is an emulated Azure container registry.
type Registry struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	ResourceGroup string `json:"resourceGroup"`
	Location      string `json:"location"`
	LoginServer   string `json:"loginServer"`
	// ManagedBy names the cluster that created the registry and reconciles
	// it; empty for a bring-your-own registry, which is never modified.
	ManagedBy      string          `json:"managedBy,omitempty"`
	CacheRules     []CacheRule     `json:"cacheRules"`
	CredentialSets []CredentialSet `json:"credentialSets"`
	Created        time.Time       `json:"created"`
}

// CacheRule is a cache rule as the API shows and stores it: the rule the
// engine serves (rules.Rule, with ACR's JSON field names sourceRepository
// and targetRepository) and, in answers, where it comes from.
type CacheRule struct {
	rules.Rule
	// Registry and FromConfig are set in answers only. FromConfig marks a
	// rule of the configuration file, served by the bound registry but not
	// editable here.
	Registry   string `json:"registry,omitempty"`
	FromConfig bool   `json:"fromConfig,omitempty"`
}

// CredentialSet holds upstream credentials for cache rules. The password is
// read, by the serving process, from PasswordFile, else the environment
// variable PasswordEnv, else Password (kept in the state as given). Answers
// never carry the password.
type CredentialSet struct {
	Name         string `json:"name"`
	LoginServer  string `json:"loginServer"`
	Username     string `json:"username"`
	Password     string `json:"password,omitempty"`
	PasswordEnv  string `json:"passwordEnv,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
}

// PrivateEndpoint is a registry's address inside the cluster's network.
type PrivateEndpoint struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Registry string `json:"registry"`
	// Address is host[:port] where nodes reach the registry.
	Address string `json:"address"`
	// Scheme is http or https: how nodes talk to Address.
	Scheme    string `json:"scheme"`
	ManagedBy string `json:"managedBy,omitempty"`
}

// DNSRecord is an A record in the private DNS zone.
type DNSRecord struct {
	Zone      string `json:"zone"`
	Name      string `json:"name"` // relative: <registry> or <registry>.<region>.data
	Type      string `json:"type"`
	Address   string `json:"ipv4Address"`
	Registry  string `json:"registry"`
	ManagedBy string `json:"managedBy,omitempty"`
}

// FQDN is the record's full name.
func (r DNSRecord) FQDN() string { return r.Name + "." + r.Zone }

func (r DNSRecord) key() string { return r.Zone + "/" + r.Name }

// Cluster is an emulated AKS cluster.
type Cluster struct {
	ID                   string           `json:"id"`
	Name                 string           `json:"name"`
	ResourceGroup        string           `json:"resourceGroup"`
	Location             string           `json:"location"`
	NodeResourceGroup    string           `json:"nodeResourceGroup"`
	KubernetesVersion    string           `json:"kubernetesVersion"`
	NetworkProfile       NetworkProfile   `json:"networkProfile"`
	BootstrapProfile     BootstrapProfile `json:"bootstrapProfile"`
	NodeOSUpgradeChannel string           `json:"nodeOSUpgradeChannel"`
	AgentPools           []AgentPool      `json:"agentPoolProfiles"`
	Extensions           []string         `json:"extensions,omitempty"`
	// ManagedRegistries are the registries AKS created for this cluster and
	// has not deleted yet: the current one, and earlier ones that nodes not
	// yet reimaged still pull from.
	ManagedRegistries []string  `json:"managedRegistries,omitempty"`
	Created           time.Time `json:"created"`
}

// NetworkProfile is the cluster's networking.
type NetworkProfile struct {
	OutboundType  string `json:"outboundType"`
	NetworkPlugin string `json:"networkPlugin"`
}

// BootstrapProfile says where nodes get cluster images and binaries.
type BootstrapProfile struct {
	ArtifactSource      string `json:"artifactSource"`
	ContainerRegistryID string `json:"containerRegistryId,omitempty"`
}

// AgentPool is a node pool.
type AgentPool struct {
	Name         string `json:"name"`
	Count        int    `json:"count"`
	OSType       string `json:"osType"`
	VnetSubnetID string `json:"vnetSubnetId,omitempty"`
	// NodeImageBootstrap is the bootstrap profile the pool's nodes were
	// imaged with; it changes only when they are reimaged.
	NodeImageBootstrap BootstrapProfile `json:"nodeImageBootstrapProfile"`
}

// State is everything the control module stores.
type State struct {
	Registries map[string]*Registry        `json:"registries"`
	Endpoints  map[string]*PrivateEndpoint `json:"privateEndpoints"`
	Records    map[string]*DNSRecord       `json:"dnsRecords"` // by zone/name
	Clusters   map[string]*Cluster         `json:"clusters"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Registries: map[string]*Registry{},
		Endpoints:  map[string]*PrivateEndpoint{},
		Records:    map[string]*DNSRecord{},
		Clusters:   map[string]*Cluster{},
	}
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := deepCopy(s)
	c.fill()
	return c
}

// clone returns a deep copy.
func (c *Cluster) clone() *Cluster { return deepCopy(c) }

// deepCopy copies v through its JSON form, which every type of the state
// has.
func deepCopy[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("deploy: %T does not marshal: %v", v, err))
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("deploy: %T does not unmarshal: %v", v, err))
	}
	return out
}

// fill makes nil maps empty.
func (s *State) fill() {
	if s.Registries == nil {
		s.Registries = map[string]*Registry{}
	}
	if s.Endpoints == nil {
		s.Endpoints = map[string]*PrivateEndpoint{}
	}
	if s.Records == nil {
		s.Records = map[string]*DNSRecord{}
	}
	if s.Clusters == nil {
		s.Clusters = map[string]*Cluster{}
	}
}
