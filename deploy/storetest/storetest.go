// Package storetest is the suite every deploy.Store runs: the state
// round-trips, its version moves with every save, a save derived from a
// version that is no longer stored writes nothing and says ErrStale, and
// writers retrying on ErrStale lose no update, from one handle or two.
// The optional abilities (deploy.Versioner, deploy.Serializer) are
// checked when a store has them.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"golang.org/x/sync/errgroup"
)

// Factory returns two handles on one new, empty stored state: for a store
// several processes share, two clients as two replicas would hold them;
// for a store one process holds, the same store twice.
type Factory func(t *testing.T) (a, b deploy.Store)

// Run runs the suite; each test gets its own stored state from f.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b deploy.Store)
	}{
		{"Empty", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"VersionsMove", testVersionsMove},
		{"StaleSaveWritesNothing", testStale},
		{"FirstSaveOnce", testFirstSave},
		{"Deletes", testDeletes},
		{"NoLostUpdate", testNoLostUpdate},
		{"Versioner", testVersioner},
		{"Serializer", testSerializer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := f(t)
			tc.fn(t, a, b)
		})
	}
}

// Sample returns a state with every kind of resource and field set.
func Sample() *deploy.State {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := deploy.NewState()
	st.Registries["labbootstrap"] = &deploy.Registry{
		ID: deploy.RegistryID("MC_rg_aks1_westus2", "labbootstrap"), Name: "labbootstrap", ResourceGroup: "MC_rg_aks1_westus2",
		Location: "westus2", LoginServer: "labbootstrap.azurecr.io", ManagedBy: "aks1", Created: created,
		CacheRules: []deploy.CacheRule{{Rule: rules.Rule{Name: deploy.RequiredRuleName, Source: deploy.RequiredRuleSource,
			Target: deploy.RequiredRuleTarget, TagTTL: units.Duration(5 * time.Minute), CredentialSet: "mcr"}}},
		CredentialSets: []deploy.CredentialSet{{Name: "mcr", LoginServer: "mcr.microsoft.com", Username: "puller", PasswordEnv: "MCR_PASSWORD"}},
	}
	st.Endpoints["labbootstrap-pe"] = &deploy.PrivateEndpoint{ID: "/subscriptions/x/pe", Name: "labbootstrap-pe",
		Registry: "labbootstrap", Address: "10.0.0.2:5000", Scheme: "http", ManagedBy: "aks1"}
	st.Records[deploy.PrivateDNSZone+"/labbootstrap"] = &deploy.DNSRecord{Zone: deploy.PrivateDNSZone, Name: "labbootstrap",
		Type: "A", Address: "10.0.0.2", Registry: "labbootstrap", ManagedBy: "aks1"}
	bp := deploy.BootstrapProfile{ArtifactSource: deploy.SourceCache, ContainerRegistryID: st.Registries["labbootstrap"].ID}
	st.Clusters["aks1"] = &deploy.Cluster{
		ID: "/subscriptions/x/aks1", Name: "aks1", ResourceGroup: "rg", Location: "westus2", NodeResourceGroup: "MC_rg_aks1_westus2",
		KubernetesVersion: "1.31.3", NetworkProfile: deploy.NetworkProfile{OutboundType: deploy.OutboundNone, NetworkPlugin: "azure"},
		BootstrapProfile: bp, NodeOSUpgradeChannel: "NodeImage", Extensions: []string{"azure-keyvault-secrets-provider"},
		AgentPools:        []deploy.AgentPool{{Name: "nodepool1", Count: 3, OSType: "Linux", NodeImageBootstrap: bp}},
		ManagedRegistries: []string{"labbootstrap"}, Created: created,
	}
	return st
}

func load(t *testing.T, s deploy.Store) (*deploy.State, string) {
	t.Helper()
	st, ver, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if st == nil || st.Registries == nil || st.Endpoints == nil || st.Records == nil || st.Clusters == nil {
		t.Fatalf("Load returned a state with nil maps: %+v", st)
	}
	return st, ver
}

func save(t *testing.T, s deploy.Store, st *deploy.State, base string) string {
	t.Helper()
	ver, err := s.Save(context.Background(), st, base)
	if err != nil {
		t.Fatalf("Save from version %q: %v", base, err)
	}
	if ver == "" || ver == base {
		t.Fatalf("Save from version %q returned version %q", base, ver)
	}
	return ver
}

// same fails unless got is stored as want is.
func same(t *testing.T, got, want *deploy.State) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("state read back differs:\ngot  %s\nwant %s", g, w)
	}
}

func testEmpty(t *testing.T, a, b deploy.Store) {
	st, ver := load(t, a)
	if ver != "" || len(st.Registries)+len(st.Endpoints)+len(st.Records)+len(st.Clusters) != 0 {
		t.Fatalf("new store: version %q, state %+v", ver, st)
	}
}

func testRoundTrip(t *testing.T, a, b deploy.Store) {
	want := Sample()
	ver := save(t, a, want, "")
	got, gotVer := load(t, b)
	if gotVer != ver {
		t.Fatalf("Load's version %q, Save returned %q", gotVer, ver)
	}
	same(t, got, want)
}

func testVersionsMove(t *testing.T, a, b deploy.Store) {
	st := Sample()
	seen := map[string]bool{"": true}
	ver := ""
	for i := range 4 {
		if i%2 == 1 {
			delete(st.Clusters, "aks1") // a change, and then the same state again
		}
		next := save(t, a, st, ver)
		if seen[next] {
			t.Fatalf("save %d returned version %q, which an earlier state had", i, next)
		}
		seen[next] = true
		ver = next
		if _, got := load(t, b); got != ver {
			t.Fatalf("after save %d, Load says version %q, Save said %q", i, got, ver)
		}
	}
}

func testStale(t *testing.T, a, b deploy.Store) {
	ctx := context.Background()
	v1 := save(t, a, Sample(), "")
	mine, base := load(t, b)
	theirs := Sample()
	delete(theirs.Clusters, "aks1")
	v2 := save(t, a, theirs, v1)
	mine.Registries["mine"] = &deploy.Registry{Name: "mine", CacheRules: []deploy.CacheRule{}, CredentialSets: []deploy.CredentialSet{}}
	for _, from := range []string{base, "", "not-a-version"} {
		if _, err := b.Save(ctx, mine, from); !errors.Is(err, deploy.ErrStale) {
			t.Fatalf("Save from version %q while %q is stored: %v, want ErrStale", from, v2, err)
		}
	}
	got, ver := load(t, a)
	if ver != v2 {
		t.Fatalf("after stale saves the version is %q, want %q", ver, v2)
	}
	same(t, got, theirs)
}

func testFirstSave(t *testing.T, a, b deploy.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []deploy.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := deploy.NewState()
			name := fmt.Sprintf("reg%d", i)
			st.Registries[name] = &deploy.Registry{Name: name, CacheRules: []deploy.CacheRule{}, CredentialSets: []deploy.CredentialSet{}}
			_, errs[i] = s.Save(ctx, st, "")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, deploy.ErrStale):
			t.Fatalf("first save: %v", err)
		}
	}
	st, _ := load(t, a)
	if won != 1 || len(st.Registries) != 1 {
		t.Fatalf("two first saves: %d succeeded, %d registries stored; want 1 and 1", won, len(st.Registries))
	}
}

func testDeletes(t *testing.T, a, b deploy.Store) {
	v := save(t, a, Sample(), "")
	st := Sample()
	delete(st.Registries, "labbootstrap")
	delete(st.Endpoints, "labbootstrap-pe")
	st.Records = nil // a nil map is an empty one
	save(t, a, st, v)
	got, _ := load(t, b)
	if len(got.Registries)+len(got.Endpoints)+len(got.Records) != 0 || len(got.Clusters) != 1 {
		t.Fatalf("deleted resources read back: %+v", got)
	}
}

// testNoLostUpdate runs writers on both handles, each adding registries
// one save at a time, reloading on ErrStale: every registry is stored.
func testNoLostUpdate(t *testing.T, a, b deploy.Store) {
	const writers, each = 3, 4
	ctx := context.Background()
	var g errgroup.Group
	for h, s := range []deploy.Store{a, b} {
		for w := range writers {
			g.Go(func() error {
				for i := range each {
					if err := addRegistry(ctx, s, fmt.Sprintf("h%dw%dr%d", h, w, i)); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	st, _ := load(t, a)
	if len(st.Registries) != 2*writers*each {
		t.Fatalf("%d registries stored, want %d: updates were lost", len(st.Registries), 2*writers*each)
	}
}

// addRegistry adds a registry by load, change and conditional save,
// again while another writer came first.
func addRegistry(ctx context.Context, s deploy.Store, name string) error {
	for attempt := 0; attempt < 1000; attempt++ {
		st, ver, err := s.Load(ctx)
		if err != nil {
			return err
		}
		st.Registries[name] = &deploy.Registry{Name: name, CacheRules: []deploy.CacheRule{}, CredentialSets: []deploy.CredentialSet{}}
		_, err = s.Save(ctx, st, ver)
		if err == nil {
			return nil
		}
		if !errors.Is(err, deploy.ErrStale) {
			return err
		}
		time.Sleep(time.Duration(attempt%5) * time.Millisecond)
	}
	return fmt.Errorf("registry %s: still stale after 1000 attempts", name)
}

func testVersioner(t *testing.T, a, b deploy.Store) {
	va, ok := a.(deploy.Versioner)
	if !ok {
		t.Skip("the store is no deploy.Versioner")
	}
	ctx := context.Background()
	if v, err := va.Version(ctx); err != nil || v != "" {
		t.Fatalf("Version of a new store: %q, %v", v, err)
	}
	ver := save(t, b, Sample(), "")
	if v, err := va.Version(ctx); err != nil || v != ver {
		t.Fatalf("Version after another handle's save: %q, %v; want %q", v, err, ver)
	}
	if _, got := load(t, a); got != ver {
		t.Fatalf("Load's version %q, Version's %q", got, ver)
	}
}

func testSerializer(t *testing.T, a, b deploy.Store) {
	sa, ok := a.(deploy.Serializer)
	if !ok {
		t.Skip("the store is no deploy.Serializer")
	}
	sb := b.(deploy.Serializer)
	ctx := context.Background()

	// Sections on both handles never overlap.
	var mu sync.Mutex
	in, most, runs := 0, 0, 0
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for _, s := range []deploy.Serializer{sa, sb, sa, sb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				errc <- s.Exclusive(ctx, func(ctx context.Context) error {
					mu.Lock()
					in++
					most, runs = max(most, in), runs+1
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					mu.Lock()
					in--
					mu.Unlock()
					return nil
				})
			}
		}()
	}
	go func() {
		wg.Wait()
		close(errc)
	}()
	for err := range errc {
		if err != nil {
			t.Fatalf("Exclusive: %v", err)
		}
	}
	if most != 1 || runs != 12 {
		t.Fatalf("%d sections ran, at most %d at once; want 12, 1", runs, most)
	}

	// fn's error is returned.
	boom := errors.New("boom")
	if err := sa.Exclusive(ctx, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Exclusive returned %v, want fn's error", err)
	}

	// A caller waiting its turn gives up when its context ends.
	entered, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- sa.Exclusive(ctx, func(context.Context) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := sb.Exclusive(wctx, func(context.Context) error { return errors.New("ran while another held the section") })
	cancel()
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exclusive while another holds it, until a deadline: %v", err)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	// The section is free again at once.
	if err := sb.Exclusive(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
