package deploy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
)

// Every limitation of network-isolated clusters is refused with a code and
// a message naming it; what is allowed is allowed.
func TestCreateClusterValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Registries in every state a bring-your-own one can be in.
	e.byo("byook")
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "byonorule"}))
	must[*deploy.PrivateEndpoint](t)(e.svc.CreatePrivateEndpoint(ctx, deploy.PrivateEndpointSpec{Name: "pe1", Registry: "byonorule"}))
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "byomodified"}))
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "byomodified", deploy.CacheRule{Rule: rules.Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "mcr/*"}}))
	must[*deploy.PrivateEndpoint](t)(e.svc.CreatePrivateEndpoint(ctx, deploy.PrivateEndpointSpec{Name: "pe2", Registry: "byomodified"}))
	e.byo("byocred")
	must[deploy.CredentialSet](t)(e.svc.CreateCredentialSet(ctx, "byocred", deploy.CredentialSet{Name: "mcr-creds", LoginServer: "mcr.microsoft.com", Username: "u", Password: "p"}))
	must[deploy.CacheRule](t)(e.svc.UpdateCacheRule(ctx, "byocred", deploy.CacheRule{Rule: rules.Rule{Name: "aks-managed-mcr", CredentialSet: "mcr-creds"}}))
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "byorenamed"}))
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "byorenamed", deploy.CacheRule{Rule: rules.Rule{Name: "mcr-all", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}}))
	must[*deploy.PrivateEndpoint](t)(e.svc.CreatePrivateEndpoint(ctx, deploy.PrivateEndpointSpec{Name: "pe3", Registry: "byorenamed"}))
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "byonope"}))
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "byonope", deploy.CacheRule{Rule: rules.Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}}))
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("owner")))

	iso := func(mod func(*deploy.ClusterSpec)) deploy.ClusterSpec {
		s := isolated("c1")
		mod(&s)
		return s
	}
	pool := func(os, subnet string) []deploy.NodePoolSpec {
		return []deploy.NodePoolSpec{{Name: "system", OSType: os, VnetSubnetID: subnet}}
	}
	const subnet = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/aks"
	cases := []struct {
		name     string
		spec     deploy.ClusterSpec
		code     string
		mentions string
	}{
		{"kubernetes 1.29", iso(func(s *deploy.ClusterSpec) { s.KubernetesVersion = "1.29.9" }), deploy.CodeKubernetesVersion, "1.30"},
		{"kubernetes 1.29 with Cache only", deploy.ClusterSpec{Name: "c1", ArtifactSource: "Cache", KubernetesVersion: "1.29"}, deploy.CodeKubernetesVersion, "1.30"},
		{"kubernetes 1.29 not isolated", deploy.ClusterSpec{Name: "c1", KubernetesVersion: "1.29.2"}, "", ""},
		{"kubernetes 1.30.0", iso(func(s *deploy.ClusterSpec) { s.KubernetesVersion = "1.30.0" }), "", ""},
		{"kubernetes garbage", iso(func(s *deploy.ClusterSpec) { s.KubernetesVersion = "latest" }), deploy.CodeInvalidParameter, "1.30"},
		{"channel Unmanaged", iso(func(s *deploy.ClusterSpec) { s.NodeOSUpgradeChannel = "Unmanaged" }), deploy.CodeUpgradeChannel, "NodeImage"},
		{"channel SecurityPatch", iso(func(s *deploy.ClusterSpec) { s.NodeOSUpgradeChannel = "SecurityPatch" }), deploy.CodeUpgradeChannel, "NodeImage"},
		{"channel None", iso(func(s *deploy.ClusterSpec) { s.NodeOSUpgradeChannel = "None" }), "", ""},
		{"Windows pool", iso(func(s *deploy.ClusterSpec) { s.NodePools = pool("Windows", "") }), deploy.CodeWindowsPool, "Windows"},
		{"kubenet", iso(func(s *deploy.ClusterSpec) { s.NetworkPlugin = "kubenet" }), deploy.CodeKubenet, "kubenet"},
		{"Dapr", iso(func(s *deploy.ClusterSpec) { s.Extensions = []string{"microsoft.dapr"} }), deploy.CodeExtension, "Dapr"},
		{"App Configuration", iso(func(s *deploy.ClusterSpec) { s.Extensions = []string{"Microsoft.AppConfiguration"} }), deploy.CodeExtension, "App Configuration"},
		{"Azure ML", iso(func(s *deploy.ClusterSpec) { s.Extensions = []string{"microsoft.azureml.kubernetes"} }), deploy.CodeExtension, "Machine Learning"},
		{"Flux", iso(func(s *deploy.ClusterSpec) { s.Extensions = []string{"flux"} }), deploy.CodeExtension, "Flux"},
		{"Azure Backup", iso(func(s *deploy.ClusterSpec) { s.Extensions = []string{"microsoft.dataprotection.kubernetes"} }), deploy.CodeExtension, "Backup"},
		{"supported extension", iso(func(s *deploy.ClusterSpec) { s.Extensions = []string{"microsoft.openservicemesh"} }), "", ""},
		{"block with BYO VNet", iso(func(s *deploy.ClusterSpec) { s.OutboundType = "block"; s.NodePools = pool("Linux", subnet) }), deploy.CodeBlockWithCustomVNet, "block"},
		{"none with BYO VNet", iso(func(s *deploy.ClusterSpec) { s.NodePools = pool("Linux", subnet) }), "", ""},
		{"block managed VNet", iso(func(s *deploy.ClusterSpec) { s.OutboundType = "block" }), "", ""},
		{"none with Direct", deploy.ClusterSpec{Name: "c1", OutboundType: "none"}, deploy.CodeOutboundNeedsCache, "Cache"},
		{"isolated with Direct", iso(func(s *deploy.ClusterSpec) { s.ArtifactSource = "Direct" }), deploy.CodeInvalidParameter, "Direct"},
		{"isolated with loadBalancer", iso(func(s *deploy.ClusterSpec) { s.OutboundType = "loadBalancer" }), deploy.CodeInvalidParameter, "loadBalancer"},
		{"registry id without Cache", deploy.ClusterSpec{Name: "c1", ContainerRegistryID: "byook"}, deploy.CodeInvalidParameter, "Cache"},
		{"Cache with unknown registry", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = deploy.RegistryID("rg", "nosuchacr") }), deploy.CodeRegistryNotUsable, "nosuchacr"},
		{"Cache with a non-registry ID", iso(func(s *deploy.ClusterSpec) {
			s.ContainerRegistryID = "/subscriptions/x/providers/Microsoft.Storage/storageAccounts/s"
		}), deploy.CodeRegistryNotUsable, "registry resource ID"},
		{"Cache with another cluster's managed registry", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = boundName }), deploy.CodeRegistryNotUsable, "owner"},
		{"BYO without the rule", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = "byonorule" }), deploy.CodeRequiredRuleMissing, "aks-managed-mcr"},
		{"BYO with the rule under another name", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = "byorenamed" }), deploy.CodeRequiredRuleMissing, "aks-managed-mcr"},
		{"BYO with a modified target", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = "byomodified" }), deploy.CodeRequiredRuleModified, "mcr/*"},
		{"BYO with a credential set on the rule", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = "byocred" }), deploy.CodeRequiredRuleModified, "mcr-creds"},
		{"BYO without private endpoint", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = "byonope" }), deploy.CodePrivateEndpointMissing, "private endpoint"},
		{"BYO usable", iso(func(s *deploy.ClusterSpec) { s.ContainerRegistryID = deploy.RegistryID("airlock", "byook") }), "", ""},
		{"managed name without bootstrap", iso(func(s *deploy.ClusterSpec) { s.ManagedRegistryName = "myacr01" }), deploy.CodeInvalidParameter, "bootstrap"},
		{"bad cluster name", deploy.ClusterSpec{Name: "-x"}, deploy.CodeInvalidParameter, "cluster name"},
		{"bad pool name", deploy.ClusterSpec{Name: "c1", NodePools: []deploy.NodePoolSpec{{Name: "Pool_1"}}}, deploy.CodeInvalidParameter, "node pool name"},
	}
	for _, c := range cases {
		// Each case runs against the same state: a created cluster is
		// deleted so that the next case starts from it.
		got, err := e.svc.CreateCluster(ctx, c.spec)
		if err == nil {
			must[*deploy.DeleteReport](t)(e.svc.DeleteCluster(ctx, "c1"))
		}
		if gotCode := code(t, err); gotCode != c.code {
			t.Errorf("%s: code %q, want %q (err %v)", c.name, gotCode, c.code, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, deploy.ErrInvalid) {
				t.Errorf("%s: %v does not wrap ErrInvalid", c.name, err)
			}
			if !strings.Contains(err.Error(), c.mentions) {
				t.Errorf("%s: message %q does not mention %q", c.name, err, c.mentions)
			}
			if _, err := e.svc.Cluster(ctx, "c1"); !errors.Is(err, deploy.ErrNotFound) {
				t.Errorf("%s: refused cluster was stored", c.name)
			}
			continue
		}
		if got.Name != "c1" {
			t.Errorf("%s: created %q", c.name, got.Name)
		}
	}
}

// Updates and node pools are held to the same limitations.
func TestUpdateClusterValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "old", KubernetesVersion: "1.29.4"}))
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "byovnet", NetworkIsolated: true,
		NodePools: []deploy.NodePoolSpec{{Name: "pool1", VnetSubnetID: "/subscriptions/x/subnets/s"}}}))
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "direct"}))
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "iso", NetworkIsolated: true}))
	cases := []struct {
		name, cluster string
		u             deploy.ClusterUpdate
		code          string
	}{
		{"enable Cache on 1.29", "old", deploy.ClusterUpdate{ArtifactSource: "Cache"}, deploy.CodeKubernetesVersion},
		{"outbound none while Direct", "direct", deploy.ClusterUpdate{OutboundType: "none"}, deploy.CodeOutboundNeedsCache},
		{"block on BYO VNet", "byovnet", deploy.ClusterUpdate{OutboundType: "block"}, deploy.CodeBlockWithCustomVNet},
		{"Unmanaged channel", "iso", deploy.ClusterUpdate{NodeOSUpgradeChannel: "Unmanaged"}, deploy.CodeUpgradeChannel},
		{"kubenet", "iso", deploy.ClusterUpdate{NetworkPlugin: "kubenet"}, deploy.CodeKubenet},
		{"Flux", "iso", deploy.ClusterUpdate{EnableExtensions: []string{"microsoft.flux"}}, deploy.CodeExtension},
		{"downgrade to 1.28", "iso", deploy.ClusterUpdate{KubernetesVersion: "1.28.0"}, deploy.CodeKubernetesVersion},
		{"unknown outbound type", "iso", deploy.ClusterUpdate{OutboundType: "natGateway"}, deploy.CodeInvalidParameter},
	}
	for _, c := range cases {
		_, err := e.svc.UpdateCluster(ctx, c.cluster, c.u)
		if got := code(t, err); got != c.code {
			t.Errorf("%s: code %q, want %q (%v)", c.name, got, c.code, err)
		}
	}
	// Refused updates changed nothing.
	if c := must[*deploy.ClusterInfo](t)(e.svc.Cluster(ctx, "iso")); c.NodeOSUpgradeChannel != "NodeImage" || len(c.Extensions) != 0 || c.KubernetesVersion != deploy.DefaultKubernetesVersion {
		t.Fatalf("refused updates left traces: %+v", c.Cluster)
	}
	_, err := e.svc.AddNodePool(ctx, "iso", deploy.NodePoolSpec{Name: "win", OSType: "Windows"})
	if got := code(t, err); got != deploy.CodeWindowsPool {
		t.Fatalf("Windows pool on an isolated cluster: %q (%v)", got, err)
	}
	must[*deploy.ClusterInfo](t)(e.svc.AddNodePool(ctx, "direct", deploy.NodePoolSpec{Name: "win", OSType: "Windows"}))
	if _, err := e.svc.UpdateCluster(ctx, "direct", deploy.ClusterUpdate{ArtifactSource: "Cache"}); code(t, err) != deploy.CodeWindowsPool {
		t.Fatalf("Cache with a Windows pool: %v", err)
	}
}
