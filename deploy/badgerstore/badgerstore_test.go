package badgerstore_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/badgerstore"
	"github.com/airlock/airlock/deploy/storetest"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"go.uber.org/zap"
)

type engine struct{ set *rules.Set }

func (e *engine) SetRules(s *rules.Set, _ map[string]upstream.Credentials) { e.set = s }

// The store passes the suite of every deploy.Store; one process holds it,
// so both handles are the same store.
func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) (deploy.Store, deploy.Store) {
		s, err := badgerstore.Open(t.TempDir(), zap.NewNop(), badgerstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, s
	})
}

// Everything the control module knows survives a restart: a new process
// opening the same directory sees the same clusters, registries, rules,
// endpoints and records, and serves the bound registry's rules again.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	bind := deploy.Binding{Registry: "labbootstrap", Address: "10.0.0.2:5000"}

	store, err := badgerstore.Open(dir, zap.NewNop(), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := badgerstore.Open(dir, zap.NewNop(), badgerstore.Options{}); !errors.Is(err, badgerstore.ErrLocked) {
		t.Fatalf("second open of a held directory: %v", err)
	}
	bind.Rules = &engine{}
	svc, err := deploy.New(ctx, store, bind, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "aks1", NetworkIsolated: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "teamacr"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateCacheRule(ctx, "teamacr", deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "goneacr"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DeleteRegistry(ctx, "goneacr"); err != nil {
		t.Fatal(err)
	}
	before, _, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store, err = badgerstore.Open(dir, zap.NewNop(), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	after, _, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed across restart:\n%+v\n%+v", before, after)
	}
	if _, gone := after.Registries["goneacr"]; gone || len(after.Registries) != 2 || len(after.Clusters) != 1 || len(after.Endpoints) != 1 || len(after.Records) != 2 {
		t.Fatalf("state after restart: %d registries, %d clusters, %d endpoints, %d records",
			len(after.Registries), len(after.Clusters), len(after.Endpoints), len(after.Records))
	}
	eng := &engine{}
	bind.Rules = eng
	svc, err = deploy.New(ctx, store, bind, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := eng.set.Match("aks-managed-repository/oss/kubernetes/pause"); !ok {
		t.Fatal("the bound registry's rule is not served after restart")
	}
	c, err := svc.Cluster(ctx, "aks1")
	if err != nil || c.BootstrapRegistry == nil || !c.BootstrapRegistry.Served {
		t.Fatalf("cluster after restart: %+v %v", c, err)
	}
}
