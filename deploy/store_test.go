package deploy_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
	"go.uber.org/zap"
)

// racingStore runs another writer's change (race) right before each of
// the next n saves, as a replica saving at the same moment would.
type racingStore struct {
	*memStore
	mu   sync.Mutex
	n    int
	race func(st *deploy.State)
}

func (r *racingStore) Save(ctx context.Context, st *deploy.State, base string) (string, error) {
	r.mu.Lock()
	run := r.n > 0
	r.n--
	r.mu.Unlock()
	if run {
		cur, ver, err := r.memStore.Load(ctx)
		if err != nil {
			return "", err
		}
		r.race(cur)
		if _, err := r.memStore.Save(ctx, cur, ver); err != nil {
			return "", err
		}
	}
	return r.memStore.Save(ctx, st, base)
}

func addRegistry(name string) func(st *deploy.State) {
	return func(st *deploy.State) {
		st.Registries[name] = &deploy.Registry{Name: name, CacheRules: []deploy.CacheRule{}, CredentialSets: []deploy.CredentialSet{}}
	}
}

// A change whose save finds another writer's change in between is applied
// again to the state read afresh: both survive, and what the change
// reports is what it did on that state, once.
func TestChangeAppliedAgainOnStaleSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := &racingStore{memStore: &memStore{}, n: 2, race: addRegistry("otheracr")}
	e := &env{t: t, eng: &engine{}, store: rs}
	e.bind = deploy.Binding{Registry: boundName, Address: boundAddr, Rules: e.eng}
	e.restart()
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "teamacr"}))
	rs.race = func(st *deploy.State) { delete(st.Registries, "otheracr") }
	rs.n = 1
	rep := must[*deploy.DeleteReport](t)(e.svc.DeleteRegistry(ctx, "teamacr"))
	if len(rep.Deleted) != 1 {
		t.Fatalf("the report of a delete applied twice: %+v", rep)
	}
	regs := must[[]*deploy.RegistryInfo](t)(e.svc.Registries(ctx))
	if len(regs) != 0 {
		t.Fatalf("registries left: %d (a change was lost)", len(regs))
	}
	// The cluster a change builds is built afresh too: its managed
	// registry's name is picked on the state read again.
	rs.race = addRegistry(boundName)
	rs.n = 1
	_, err := e.svc.CreateCluster(ctx, isolated("aks1"))
	if err != nil {
		t.Fatal(err)
	}
	c := must[*deploy.ClusterInfo](t)(e.svc.Cluster(ctx, "aks1"))
	if c.BootstrapRegistry == nil || c.BootstrapRegistry.Name == boundName || !c.BootstrapRegistry.Managed {
		t.Fatalf("the cluster took registry %+v, which another writer had created meanwhile", c.BootstrapRegistry)
	}
}

// A change that keeps finding other writers' changes is given up after a
// bound, as a conflict to try again; nothing of it is stored.
func TestChangeGivesUpWhenAlwaysStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := &racingStore{memStore: &memStore{}, n: 1000, race: func(st *deploy.State) { st.Records = map[string]*deploy.DNSRecord{} }}
	e := &env{t: t, eng: &engine{}, store: rs}
	e.bind = deploy.Binding{Registry: boundName, Address: boundAddr, Rules: e.eng}
	e.restart()
	_, err := e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "teamacr"})
	if !errors.Is(err, deploy.ErrConflict) || !errors.Is(err, deploy.ErrStale) || code(t, err) != deploy.CodeConcurrentUpdate {
		t.Fatalf("always stale: %v", err)
	}
	st, _, _ := rs.memStore.Load(ctx)
	if len(st.Registries) != 0 {
		t.Fatal("a change given up was stored")
	}
}

// A change that changes nothing (a reconcile with nothing to repair)
// writes nothing: replicas reconciling every interval do not make new
// versions for each other to read.
func TestNoChangeNoSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks1")))
	store := e.store.(*memStore)
	before := store.saveCount()
	for range 3 {
		must[[]deploy.ReconcileReport](t)(e.svc.Reconcile(ctx, ""))
	}
	if err := e.svc.DeleteCacheRule(ctx, boundName, "nosuchrule"); err == nil {
		t.Fatal("deleted a rule that does not exist")
	}
	if n := store.saveCount() - before; n != 0 {
		t.Fatalf("%d saves for changes that changed nothing", n)
	}
}

// failingStore fails to load until it is told to work.
type failingStore struct {
	*memStore
	mu   sync.Mutex
	down bool
}

func (f *failingStore) Load(ctx context.Context) (*deploy.State, string, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return nil, "", errors.New("store unreachable")
	}
	return f.memStore.Load(ctx)
}

// With WithDeferredLoad a Service starts while its store does not answer:
// the engine serves the base rules, reads fail, and once the store answers
// the stored rules are served and the bootstrap images pinned.
func TestDeferredLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := newEnv(t)
	ms := first.store.(*memStore)
	must[*deploy.ClusterInfo](t)(first.svc.CreateCluster(ctx, isolated("aks1")))

	fs := &failingStore{memStore: ms, down: true}
	eng, p := &engine{}, &pinner{pins: map[string][]string{}}
	base := []rules.Rule{{Name: "dockerhub", Source: "docker.io/library/*", Target: "library/*"}}
	svc, err := deploy.New(ctx, fs, deploy.Binding{Registry: boundName, Address: boundAddr, Rules: eng, Pins: p, Bootstrap: bootstrapFor, BaseRules: base},
		zap.NewNop(), nil, deploy.WithDeferredLoad())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := eng.serves("library/nginx"); !ok {
		t.Fatal("the base rules are not served before the state is loaded")
	}
	if _, err := svc.Clusters(ctx); err == nil {
		t.Fatal("a read answered without the state")
	}
	if _, err := svc.Refresh(ctx); err == nil {
		t.Fatal("a refresh without the store succeeded")
	}
	fs.mu.Lock()
	fs.down = false
	fs.mu.Unlock()
	if changed, err := svc.Refresh(ctx); err != nil || !changed {
		t.Fatalf("refresh once the store answers: %v, %v", changed, err)
	}
	if _, ok := eng.serves(pauseRepo); !ok {
		t.Fatal("the stored rules are not served")
	}
	if got := p.of("cluster/aks1"); len(got) != 2 {
		t.Fatalf("pins once loaded: %v", got)
	}
	if cs := must[[]*deploy.ClusterInfo](t)(svc.Clusters(ctx)); len(cs) != 1 {
		t.Fatalf("%d clusters", len(cs))
	}
}
