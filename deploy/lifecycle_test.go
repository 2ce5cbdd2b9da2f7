package deploy_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
)

// An AKS-managed registry comes with the cluster, is served by this
// process, is restored by reconcile whatever of it is deleted or changed,
// and goes with the cluster.
func TestManagedRegistryLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c := must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks1")))
	if !c.NetworkIsolated || c.NetworkProfile.OutboundType != "none" || c.BootstrapProfile.ArtifactSource != "Cache" {
		t.Fatalf("cluster %+v", c.Cluster)
	}
	ref := c.BootstrapRegistry
	if ref == nil || ref.Name != boundName || !ref.Managed || !ref.Served || ref.Problem != "" || ref.Endpoint != "http://"+boundAddr {
		t.Fatalf("bootstrap registry %+v", ref)
	}
	if len(c.NodesNeedingReimage) != 0 {
		t.Fatalf("new nodes need reimage: %v", c.NodesNeedingReimage)
	}
	checkManaged := func(step string) {
		t.Helper()
		reg, err := e.svc.Registry(ctx, boundName)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !strings.Contains(reg.Name, "bootstrap") || reg.ManagedBy != "aks1" || len(reg.CacheRules) != 1 {
			t.Fatalf("%s: registry %+v", step, reg.Registry)
		}
		if r := reg.CacheRules[0]; r.Name != "aks-managed-mcr" || r.Source != "mcr.microsoft.com/*" || r.Target != "aks-managed-repository/*" || r.CredentialSet != "" {
			t.Fatalf("%s: rule %+v", step, r)
		}
		if len(reg.PrivateEndpoints) != 1 || reg.PrivateEndpoints[0].Address != boundAddr || reg.PrivateEndpoints[0].Scheme != "http" {
			t.Fatalf("%s: endpoints %+v", step, reg.PrivateEndpoints)
		}
		var names []string
		for _, r := range reg.DNSRecords {
			if r.Address != "10.0.0.2" || r.Zone != "privatelink.azurecr.io" || r.Type != "A" {
				t.Fatalf("%s: record %+v", step, r)
			}
			names = append(names, r.Name)
		}
		if !slices.Equal(names, []string{boundName, boundName + ".westus2.data"}) {
			t.Fatalf("%s: records %v", step, names)
		}
		if up, ok := e.eng.serves(pauseRepo); !ok || up != "mcr.microsoft.com/oss/kubernetes/pause" {
			t.Fatalf("%s: engine serves %q %v", step, up, ok)
		}
	}
	checkManaged("created")

	drift := []struct {
		name         string
		break_       func() error
		kind, action string
	}{
		{"registry deleted", func() error { _, err := e.svc.DeleteRegistry(ctx, boundName); return err }, "registry", "restored"},
		{"rule deleted", func() error { return e.svc.DeleteCacheRule(ctx, boundName, "aks-managed-mcr") }, "cacheRule", "restored"},
		{"rule given a credential set", func() error {
			if _, err := e.svc.CreateCredentialSet(ctx, boundName, deploy.CredentialSet{Name: "creds", Username: "u", Password: "p"}); err != nil && !errors.Is(err, deploy.ErrConflict) {
				return err
			}
			_, err := e.svc.UpdateCacheRule(ctx, boundName, deploy.CacheRule{Rule: rules.Rule{Name: "aks-managed-mcr", CredentialSet: "creds"}})
			return err
		}, "cacheRule", "reset"},
		{"endpoint deleted", func() error { _, err := e.svc.DeletePrivateEndpoint(ctx, boundName+"-pe"); return err }, "privateEndpoint", "restored"},
		{"endpoint moved", func() error {
			if _, err := e.svc.DeletePrivateEndpoint(ctx, boundName+"-pe"); err != nil {
				return err
			}
			_, err := e.svc.CreatePrivateEndpoint(ctx, deploy.PrivateEndpointSpec{Name: boundName + "-pe", Registry: boundName, Address: "10.9.9.9:443", Scheme: "https"})
			return err
		}, "privateEndpoint", "reset"},
		{"DNS record deleted", func() error { return e.svc.DeleteDNSRecord(ctx, boundName) }, "dnsRecord", "restored"},
		{"DNS record changed", func() error {
			_, err := e.svc.SetDNSRecord(ctx, deploy.DNSRecord{Name: boundName + ".westus2.data", Address: "192.168.7.7"})
			return err
		}, "dnsRecord", "reset"},
	}
	for _, d := range drift {
		if err := d.break_(); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		if d.name == "registry deleted" || d.name == "rule deleted" {
			if _, ok := e.eng.serves(pauseRepo); ok {
				t.Fatalf("%s: the engine still serves the rule", d.name)
			}
		}
		reps := must[[]deploy.ReconcileReport](t)(e.svc.Reconcile(ctx, "aks1"))
		if !repaired(reps, d.kind, d.action) {
			t.Fatalf("%s: reconcile did not report %s %s: %+v", d.name, d.kind, d.action, reps)
		}
		checkManaged(d.name)
	}
	if reps := must[[]deploy.ReconcileReport](t)(e.svc.Reconcile(ctx, "")); len(reps) != 1 || len(reps[0].Repairs) != 0 {
		t.Fatalf("reconcile of an intact cluster repaired %+v", reps)
	}

	rep := must[*deploy.DeleteReport](t)(e.svc.DeleteCluster(ctx, "aks1"))
	if len(rep.Deleted) != 5 || len(rep.Kept) != 0 { // cluster, registry, endpoint, 2 records
		t.Fatalf("delete report %+v", rep)
	}
	if _, err := e.svc.Registry(ctx, boundName); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("managed registry survived its cluster: %v", err)
	}
	if pes := must[[]deploy.PrivateEndpoint](t)(e.svc.PrivateEndpoints(ctx, "")); len(pes) != 0 {
		t.Fatalf("endpoints left: %+v", pes)
	}
	if recs := must[[]deploy.DNSRecord](t)(e.svc.DNSRecords(ctx)); len(recs) != 0 {
		t.Fatalf("records left: %+v", recs)
	}
	if _, ok := e.eng.serves(pauseRepo); ok {
		t.Fatal("the engine still serves the deleted registry's rule")
	}
}

// A bring-your-own registry is never modified: reconcile reports what is
// wrong with it, and deleting or disabling leaves it, its extra rules and
// its endpoint in place, across restarts.
func TestBringYourOwnRegistryLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(b *deploy.Binding) { b.Registry = "teamacr" })
	ctx := context.Background()
	e.byo("teamacr")
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "teamacr", deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*"}}))
	c := must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "aks2", NetworkIsolated: true, ContainerRegistryID: deploy.RegistryID("airlock", "teamacr")}))
	if ref := c.BootstrapRegistry; ref == nil || ref.Managed || !ref.Served || ref.Name != "teamacr" || len(c.ManagedRegistries) != 0 {
		t.Fatalf("bootstrap registry %+v, managed %v", c.BootstrapRegistry, c.ManagedRegistries)
	}
	if _, ok := e.eng.serves("dotnet/runtime"); !ok {
		t.Fatal("extra rule not served")
	}

	// Drift on a BYO registry is reported, not repaired.
	ok(t, e.svc.DeleteCacheRule(ctx, "teamacr", "aks-managed-mcr"))
	reps := must[[]deploy.ReconcileReport](t)(e.svc.Reconcile(ctx, "aks2"))
	if len(reps[0].Repairs) != 0 || len(reps[0].Problems) != 1 || !strings.Contains(reps[0].Problems[0], "aks-managed-mcr") {
		t.Fatalf("reconcile of a BYO registry: %+v", reps)
	}
	if got := must[*deploy.ClusterInfo](t)(e.svc.Cluster(ctx, "aks2")); !strings.Contains(got.BootstrapRegistry.Problem, deploy.CodeRequiredRuleMissing) {
		t.Fatalf("cluster show does not report the problem: %+v", got.BootstrapRegistry)
	}
	if _, ok := e.eng.serves(pauseRepo); ok {
		t.Fatal("reconcile restored a rule of a BYO registry")
	}
	// The problem does not block an unrelated update.
	must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks2", deploy.ClusterUpdate{OutboundType: "block"}))
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "teamacr", deploy.CacheRule{Rule: rules.Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}}))

	// Disable: nothing is deleted; the nodes need reimage.
	c = must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks2", deploy.ClusterUpdate{ArtifactSource: "Direct", OutboundType: "loadBalancer"}))
	if len(c.NodesNeedingReimage) != 3 || c.NetworkIsolated || c.BootstrapRegistry != nil {
		t.Fatalf("after Direct: %+v", c)
	}
	must[*deploy.ClusterInfo](t)(e.svc.UpgradeNodeImage(ctx, "aks2", ""))
	rep := must[*deploy.DeleteReport](t)(e.svc.DeleteCluster(ctx, "aks2"))
	if len(rep.Deleted) != 1 {
		t.Fatalf("deleting a cluster with a BYO registry deleted %v", rep.Deleted)
	}

	e.restart()
	reg := must[*deploy.RegistryInfo](t)(e.svc.Registry(ctx, "teamacr"))
	if len(reg.CacheRules) != 2 || len(reg.PrivateEndpoints) != 1 || len(reg.DNSRecords) != 2 || reg.ManagedBy != "" {
		t.Fatalf("BYO registry after cluster delete and restart: %+v", reg)
	}
	for _, repo := range []string{pauseRepo, "dotnet/runtime"} {
		if _, ok := e.eng.serves(repo); !ok {
			t.Fatalf("after restart the engine does not serve %s", repo)
		}
	}
}

// Switching a managed cluster to Direct keeps its registry while nodes
// still pull from it; reimaging them lets AKS delete it.
func TestManagedToDirectDeletesRegistryAfterReimage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks3")))
	c := must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks3", deploy.ClusterUpdate{ArtifactSource: "Direct", OutboundType: "loadBalancer"}))
	if len(c.NodesNeedingReimage) != 3 || c.NodesNeedingReimage[0] != "aks-nodepool1-vmss000000" {
		t.Fatalf("nodes needing reimage %v", c.NodesNeedingReimage)
	}
	if len(c.Warnings) == 0 || !strings.Contains(c.Warnings[0], "reimage") {
		t.Fatalf("warnings %v", c.Warnings)
	}
	if _, err := e.svc.Registry(ctx, boundName); err != nil {
		t.Fatalf("managed registry deleted while nodes still use it: %v", err)
	}
	if reps := must[[]deploy.ReconcileReport](t)(e.svc.Reconcile(ctx, "aks3")); len(reps[0].Repairs) != 0 {
		t.Fatalf("reconcile before reimage: %+v", reps)
	}
	c = must[*deploy.ClusterInfo](t)(e.svc.UpgradeNodeImage(ctx, "aks3", ""))
	if len(c.NodesNeedingReimage) != 0 || len(c.ManagedRegistries) != 0 {
		t.Fatalf("after reimage: %+v", c)
	}
	if _, err := e.svc.Registry(ctx, boundName); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("managed registry kept after every node left it: %v", err)
	}
	if _, ok := e.eng.serves(pauseRepo); ok {
		t.Fatal("engine still serves the deleted managed registry")
	}
	// Enabling again creates a managed registry again: the bound one.
	c = must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks3", deploy.ClusterUpdate{ArtifactSource: "Cache"}))
	if c.BootstrapRegistry == nil || c.BootstrapRegistry.Name != boundName || !c.BootstrapRegistry.Served || len(c.NodesNeedingReimage) != 3 {
		t.Fatalf("re-enabled: %+v", c)
	}
	// Outbound none before the reimage: the Direct nodes have no egress.
	c = must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks3", deploy.ClusterUpdate{OutboundType: "none"}))
	if !slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "no egress") }) {
		t.Fatalf("no warning for Direct nodes without egress: %v", c.Warnings)
	}
}

// Changing only the outbound type deletes nothing and needs no reimage.
func TestOutboundTypeChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks4")))
	for _, o := range []string{"block", "loadBalancer", "userDefinedRouting", "none"} {
		c := must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks4", deploy.ClusterUpdate{OutboundType: o}))
		if c.NetworkIsolated != (o == "none" || o == "block") || len(c.NodesNeedingReimage) != 0 || c.BootstrapRegistry == nil || !c.BootstrapRegistry.Served {
			t.Fatalf("outbound %s: %+v", o, c)
		}
	}
}

// A second managed cluster cannot take the bound name: its registry is
// kept as data, and the answer says it is not served.
func TestSecondManagedRegistryIsDataOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("first")))
	c := must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("second")))
	ref := c.BootstrapRegistry
	if ref.Name == boundName || !strings.Contains(ref.Name, "bootstrap") || ref.Served || !ref.Managed || ref.Problem != "" {
		t.Fatalf("second managed registry %+v", ref)
	}
	if !strings.HasPrefix(ref.Endpoint, "https://10.") || len(c.Warnings) == 0 {
		t.Fatalf("endpoint %q warnings %v", ref.Endpoint, c.Warnings)
	}
	c = must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "third", NetworkIsolated: true, ManagedRegistryName: "thirdbootstrapacr"}))
	if c.BootstrapRegistry.Name != "thirdbootstrapacr" {
		t.Fatalf("named managed registry %+v", c.BootstrapRegistry)
	}
}
