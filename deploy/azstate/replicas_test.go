package azstate_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/azstate"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/airlock/airlock/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sync/errgroup"
)

// The tests of this file run two replicas' control modules on one
// container: each has its own container client, store, engine and
// metrics; they share only what is in Azure (and, standing in for the
// shared index, one pin set).

const bound = "labbootstrap"

// engine records the rule set a replica's control module serves.
type engine struct {
	mu  sync.Mutex
	set *rules.Set
}

func (e *engine) SetRules(s *rules.Set, _ map[string]upstream.Credentials) {
	e.mu.Lock()
	e.set = s
	e.mu.Unlock()
}

func (e *engine) serves(repo string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return false
	}
	_, ok := e.set.Match(repo)
	return ok
}

// sharedPins stands in for the pins of the shared index: SyncPins replaces
// the owners under the prefix, as the collector does. lost records any
// sync that dropped a pinned owner.
type sharedPins struct {
	mu   sync.Mutex
	pins map[string][]string
	lost []string
}

func (p *sharedPins) owners() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.pins))
}

// replicaPins is one replica's Pinner over the shared pins; it keeps the
// last set the replica asked for. A sync takes a while (0-20 ms), as the
// collector's requests to the index do.
type replicaPins struct {
	shared *sharedPins
	mu     sync.Mutex
	last   map[string][]string
}

func (r *replicaPins) SyncPins(prefix string, want map[string][]string) error {
	r.mu.Lock()
	r.last = want
	r.mu.Unlock()
	time.Sleep(time.Duration(rand.N(20)) * time.Millisecond)
	p := r.shared
	p.mu.Lock()
	defer p.mu.Unlock()
	for owner := range p.pins {
		if _, ok := want[owner]; !ok && strings.HasPrefix(owner, prefix) {
			p.lost = append(p.lost, owner)
			delete(p.pins, owner)
		}
	}
	for owner, refs := range want {
		p.pins[owner] = refs
	}
	return nil
}

func (r *replicaPins) wanted() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func bootstrapImages(version string) ([]string, error) {
	return []string{"aks-managed-repository/oss/kubernetes/pause:3.10", "aks-managed-repository/oss/kubernetes/kube-proxy:v" + version}, nil
}

type replica struct {
	svc  *deploy.Service
	eng  *engine
	pins *replicaPins
	prom *prometheus.Registry
}

// replicas starts n replicas' control modules, bound to one registry, on
// a new container; addr gives replica i's address, live whether a
// replica's address is live (nil: every replica has one address and none
// knows of the others).
func replicas(t *testing.T, srv *azuritetest.Server, n int, addr func(i int) string, live func(string) bool) []*replica {
	t.Helper()
	name := azuritetest.ContainerName("ctl")
	shared := &sharedPins{pins: map[string][]string{}}
	var out []*replica
	for i := range n {
		r := &replica{eng: &engine{}, pins: &replicaPins{shared: shared}, prom: prometheus.NewRegistry()}
		b := deploy.Binding{Registry: bound, Address: "10.0.0.5:5000", Rules: r.eng, Pins: r.pins, Bootstrap: bootstrapImages, Replica: live}
		if addr != nil {
			b.Address = addr(i)
		}
		store := azstate.New(azuretest.Open(t, srv, name), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		svc, err := deploy.New(context.Background(), store, b, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), r.prom)
		if err != nil {
			t.Fatal(err)
		}
		r.svc = svc
		out = append(out, r)
	}
	return out
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func refresh(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		if _, err := r.svc.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// counter is the sum of counter name's series of r with the labels
// (name1, value1, ...).
func (r *replica) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return promtest.Sum(t, r.prom, name, labels...)
}

func rule(name, repo string) deploy.CacheRule {
	return deploy.CacheRule{Rule: rules.Rule{Name: name, Source: "mcr.microsoft.com/" + repo + "/*", Target: repo + "/*"}}
}

// byo creates the bound registry on r, with the rule aks-managed-mcr and
// a private endpoint, ready for clusters; it returns its ID.
func byo(t *testing.T, r *replica) string {
	t.Helper()
	ctx := context.Background()
	info := must[*deploy.RegistryInfo](t)(r.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: bound}))
	must[deploy.CacheRule](t)(r.svc.CreateCacheRule(ctx, bound, deploy.CacheRule{Rule: rules.Rule{
		Name: deploy.RequiredRuleName, Source: deploy.RequiredRuleSource, Target: deploy.RequiredRuleTarget}}))
	must[*deploy.PrivateEndpoint](t)(r.svc.CreatePrivateEndpoint(ctx, deploy.PrivateEndpointSpec{Name: bound + "-pe", Registry: bound}))
	return info.ID
}

func cacheCluster(name, registryID string) deploy.ClusterSpec {
	return deploy.ClusterSpec{Name: name, NetworkIsolated: true, ContainerRegistryID: registryID}
}

// A rule created through one replica's admin API is served by the other's
// engine after its next refresh, and listed by its admin API; the refresh
// loop gets it there within its interval.
func testRuleServedEverywhere(t *testing.T, srv *azuritetest.Server) {
	rs := replicas(t, srv, 2, nil, nil)
	a, b := rs[0], rs[1]
	ctx := context.Background()
	must[*deploy.RegistryInfo](t)(a.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: bound}))
	must[deploy.CacheRule](t)(a.svc.CreateCacheRule(ctx, bound, rule("dotnet", "dotnet")))
	if !a.eng.serves("dotnet/runtime") || b.eng.serves("dotnet/runtime") {
		t.Fatalf("before B's refresh: A serves %v, B serves %v", a.eng.serves("dotnet/runtime"), b.eng.serves("dotnet/runtime"))
	}
	if changed := must[bool](t)(b.svc.Refresh(ctx)); !changed || !b.eng.serves("dotnet/runtime") {
		t.Fatalf("B's refresh: changed %v, serves the rule %v", changed, b.eng.serves("dotnet/runtime"))
	}
	if changed := must[bool](t)(b.svc.Refresh(ctx)); changed {
		t.Fatal("a refresh with nothing new reports a change")
	}
	if r, err := b.svc.CacheRule(ctx, bound, "dotnet"); err != nil || r.Target != "dotnet/*" {
		t.Fatalf("B's admin API: %+v, %v", r, err)
	}

	// The loop: a rule deleted on B stops being served by A within the
	// interval (bounded wait, 40 intervals).
	const every = 50 * time.Millisecond
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.svc.Follow(lctx, every)
	}()
	defer func() {
		stop()
		<-done
	}()
	must[deploy.CacheRule](t)(b.svc.CreateCacheRule(ctx, bound, rule("python", "python")))
	polltest.Until(t, 40*every, "A serves B's new rule", func() bool { return a.eng.serves("python/app") })
	if err := b.svc.DeleteCacheRule(ctx, bound, "dotnet"); err != nil {
		t.Fatal(err)
	}
	polltest.Until(t, 40*every, "A stops serving the rule B deleted", func() bool { return !a.eng.serves("dotnet/runtime") })
	if a.counter(t, "airlock_control_state_reloads_total") < 2 {
		t.Fatal("A's reloads were not counted")
	}
}

// Changes made at once through both replicas all survive: each replica's
// save that finds the other's in between applies its change again to it.
func testConcurrentChanges(t *testing.T, srv *azuritetest.Server) {
	rs := replicas(t, srv, 2, nil, nil)
	ctx := context.Background()
	must[*deploy.RegistryInfo](t)(rs[0].svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: bound}))
	const each = 6
	var g errgroup.Group
	for i, r := range rs {
		for j := range each {
			g.Go(func() error {
				name := fmt.Sprintf("rule-%d-%d", i, j)
				_, err := r.svc.CreateCacheRule(ctx, bound, rule(name, name))
				return err
			})
		}
		g.Go(func() error { // and another kind of change on the side
			_, err := r.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: fmt.Sprintf("team%d", i)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	refresh(t, rs...)
	for _, r := range rs {
		got := must[[]deploy.CacheRule](t)(r.svc.CacheRules(ctx, bound))
		regs := must[[]*deploy.RegistryInfo](t)(r.svc.Registries(ctx))
		if len(got) != 2*each || len(regs) != 3 {
			t.Fatalf("a replica lists %d rules and %d registries, want %d and 3: changes were lost", len(got), len(regs), 2*each)
		}
		for i := range 2 {
			for j := range each {
				if name := fmt.Sprintf("rule-%d-%d", i, j); !r.eng.serves(name + "/x") {
					t.Fatalf("rule %s is not served", name)
				}
			}
		}
	}
	t.Logf("stale saves retried: %v + %v", rs[0].counter(t, "airlock_control_state_stale_saves_total"), rs[1].counter(t, "airlock_control_state_stale_saves_total"))
}

// Both replicas pin the same bootstrap images, from the shared state, and
// while clusters are created through one, the other refreshing all the
// while, no sync ever drops a cluster's pins.
func testPinsAgree(t *testing.T, srv *azuritetest.Server) {
	rs := replicas(t, srv, 2, nil, nil)
	a, b := rs[0], rs[1]
	ctx := context.Background()
	id := byo(t, a)
	const clusters = 5
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() { // both keep refreshing and syncing
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.svc.Refresh(ctx)
			}
		}()
	}
	for i := range clusters {
		spec := cacheCluster(fmt.Sprintf("aks%d", i), id)
		spec.KubernetesVersion = "1.31.3"
		if i%2 == 1 {
			must[*deploy.ClusterInfo](t)(b.svc.CreateCluster(ctx, spec))
		} else {
			must[*deploy.ClusterInfo](t)(a.svc.CreateCluster(ctx, spec))
		}
	}
	close(stop)
	wg.Wait()
	refresh(t, a, b)
	shared := a.pins.shared
	if len(shared.lost) > 0 {
		t.Fatalf("pins of %v were dropped by a sync of an older state", shared.lost)
	}
	var want []string
	for i := range clusters {
		want = append(want, fmt.Sprintf("%saks%d", deploy.PinOwnerPrefix, i))
	}
	if got := shared.owners(); !slices.Equal(got, want) {
		t.Fatalf("shared pins %v, want %v", got, want)
	}
	wa, wb := fmt.Sprint(a.pins.wanted()), fmt.Sprint(b.pins.wanted())
	if wa != wb {
		t.Fatalf("the replicas pin different images:\nA %s\nB %s", wa, wb)
	}
	// Deleting a cluster unpins it everywhere; nothing else moves.
	must[*deploy.DeleteReport](t)(b.svc.DeleteCluster(ctx, "aks0"))
	refresh(t, a, b)
	if got := shared.owners(); len(got) != clusters-1 || slices.Contains(got, deploy.PinOwnerPrefix+"aks0") {
		t.Fatalf("after deleting aks0 the shared pins are %v", got)
	}
}

// Both replicas reconcile at once what is broken: the repairs are made
// (and counted) once, the rule is not restored twice, and both engines
// serve it.
func testReconcileConverges(t *testing.T, srv *azuritetest.Server) {
	rs := replicas(t, srv, 2, nil, nil)
	a, b := rs[0], rs[1]
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(a.svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "aks1", NetworkIsolated: true}))
	if err := a.svc.DeleteCacheRule(ctx, bound, deploy.RequiredRuleName); err != nil {
		t.Fatal(err)
	}
	must[*deploy.DeleteReport](t)(a.svc.DeletePrivateEndpoint(ctx, bound+"-pe"))
	refresh(t, b)
	if b.eng.serves("aks-managed-repository/oss/kubernetes/pause") {
		t.Fatal("B serves the deleted rule")
	}
	reconcileAll(t, rs, 3)
	for _, kind := range []string{"cacheRule", "privateEndpoint", "dnsRecord"} {
		n := a.counter(t, "airlock_control_repairs_total", "kind", kind) + b.counter(t, "airlock_control_repairs_total", "kind", kind)
		want := 1.0
		if kind == "dnsRecord" {
			want = 2 // <registry> and <registry>.<region>.data
		}
		if n != want {
			t.Fatalf("%s repairs counted on both replicas: %v, want %v", kind, n, want)
		}
	}
	refresh(t, a, b)
	for _, r := range rs {
		info := must[*deploy.RegistryInfo](t)(r.svc.Registry(ctx, bound))
		if n := len(info.CacheRules); n != 1 || len(info.PrivateEndpoints) != 1 || len(info.DNSRecords) != 2 {
			t.Fatalf("after both reconciled: %d rules, %d endpoints, %d records", n, len(info.PrivateEndpoints), len(info.DNSRecords))
		}
		if !r.eng.serves("aks-managed-repository/oss/kubernetes/pause") {
			t.Fatal("the restored rule is not served")
		}
	}
}

// reconcileAll runs every replica's reconcile of every cluster at once,
// rounds times.
func reconcileAll(t *testing.T, rs []*replica, rounds int) {
	t.Helper()
	for range rounds {
		var g errgroup.Group
		for _, r := range rs {
			g.Go(func() error {
				_, err := r.svc.Reconcile(context.Background(), "")
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// Replicas at different addresses do not take the private endpoint from
// each other: it stays at whichever live replica it points to, and moves
// only off a replica that is gone.
func testEndpointNotFought(t *testing.T, srv *azuritetest.Server) {
	addrs := []string{"10.0.0.5:5000", "10.0.0.6:5000"}
	var mu sync.Mutex
	up := map[string]bool{addrs[0]: true, addrs[1]: true}
	live := func(a string) bool {
		mu.Lock()
		defer mu.Unlock()
		return up[a]
	}
	rs := replicas(t, srv, 2, func(i int) string { return addrs[i] }, live)
	ctx := context.Background()
	must[*deploy.ClusterInfo](t)(rs[0].svc.CreateCluster(ctx, deploy.ClusterSpec{Name: "aks1", NetworkIsolated: true}))
	endpoint := func() string {
		pes := must[[]deploy.PrivateEndpoint](t)(rs[1].svc.PrivateEndpoints(ctx, bound))
		if len(pes) != 1 {
			t.Fatalf("%d private endpoints", len(pes))
		}
		return pes[0].Address
	}
	refresh(t, rs[1])
	if got := endpoint(); got != addrs[0] {
		t.Fatalf("the endpoint is at %s, want the creator's %s", got, addrs[0])
	}
	reconcileAll(t, rs, 4)
	resets := func(kind string) float64 {
		l := []string{"action", "reset"}
		if kind != "" {
			l = append(l, "kind", kind)
		}
		return rs[0].counter(t, "airlock_control_repairs_total", l...) + rs[1].counter(t, "airlock_control_repairs_total", l...)
	}
	if n := resets(""); n != 0 {
		t.Fatalf("replicas reset %v resources of each other's", n)
	}
	mu.Lock()
	up[addrs[0]] = false // replica 1 is gone
	mu.Unlock()
	if _, err := rs[1].svc.Reconcile(ctx, ""); err != nil {
		t.Fatal(err)
	}
	refresh(t, rs[1])
	if got := endpoint(); got != addrs[1] {
		t.Fatalf("the endpoint stayed at the dead replica's %s", got)
	}
	mu.Lock()
	up[addrs[0]] = true // back, and leaves it where it is
	mu.Unlock()
	reconcileAll(t, rs, 2)
	if got, n := endpoint(), resets("privateEndpoint"); got != addrs[1] || n != 1 {
		t.Fatalf("endpoint at %s after %v resets; want %s after 1", got, n, addrs[1])
	}
}

// The replicas' tests share one Azurite, each on its own container.
func TestReplicas(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	azuritetest.Tests{
		"RuleServedEverywhere": testRuleServedEverywhere,
		"ConcurrentChanges":    testConcurrentChanges,
		"PinsAgree":            testPinsAgree,
		"ReconcileConverges":   testReconcileConverges,
		"EndpointNotFought":    testEndpointNotFought,
	}.Run(t, srv)
}
