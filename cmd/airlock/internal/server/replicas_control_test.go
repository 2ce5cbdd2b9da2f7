package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
	"go.uber.org/zap"
)

// The control module's state is the replicas' shared one. A cache rule
// created through replica 0 is served at once through replica 0 for an
// image whose manifest replica 1 owns (the peer request carries replica
// 0's control state version: replica 1 refreshes before it answers), by
// replica 1 itself, and listed by replica 1's admin API; a second rule,
// with no request between the replicas, is listed by replica 1 within
// deploy.DefaultRefreshInterval (Follow); a replica started afterwards
// serves them.
func TestReplicasControlShared(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1)
	// ownedBy pushes team/<name>:v1 upstream with its manifest owned by
	// replica want (of 0 and 1) and returns its local name.
	n := 0
	ownedBy := func(want int) string {
		for ; ; n++ {
			repo := fmt.Sprintf("team/app%d", n)
			if s.owner("team/"+repo+":v1", 0, 1) == want {
				n++
				s.up.PushImage(t, repo+":v1", 16<<10, 1)
				return "team/" + repo
			}
		}
	}
	viaOwner1, viaSelf1 := ownedBy(1), ownedBy(0)
	if code, _, _ := get(t, s.url(0)+"/v2/"+viaOwner1+"/manifests/v1"); code != http.StatusNotFound {
		t.Fatalf("before the rule: replica 0 answered %d for %s, want 404", code, viaOwner1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctl := s.rs[0].srv.Control()
	reg := ctl.Binding().Registry
	if _, err := ctl.CreateRegistry(ctx, deploy.RegistrySpec{Name: reg}); err != nil {
		t.Fatal(err)
	}
	rule := deploy.CacheRule{Rule: rules.Rule{Name: "team-rule", Source: "mcr.microsoft.com/*", Target: "team/*"}}
	if _, err := ctl.CreateCacheRule(ctx, reg, rule); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, s.url(0)+"/v2/"+viaOwner1+"/manifests/v1"); code != http.StatusOK {
		t.Fatalf("replica 0 answered %d for %s (its manifest owned by replica 1) right after the rule was created through it, want 200: %s", code, viaOwner1, body)
	}
	start := time.Now()
	deadline := start.Add(deploy.DefaultRefreshInterval + 5*time.Second)
	for {
		code, _, _ := get(t, s.url(1)+"/v2/"+viaSelf1+"/manifests/v1")
		if code == http.StatusOK {
			t.Logf("replica 1 served the rule created through replica 0 after %v", time.Since(start).Round(10*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 1 still answers %d for %s %v after the rule was created through replica 0", code, viaSelf1, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := s.rs[1].srv.Control().CacheRule(ctx, reg, "team-rule"); err != nil {
		t.Fatalf("replica 1's admin API: %v", err)
	}
	// With no request between them, replica 1 follows the store alone.
	second := deploy.CacheRule{Rule: rules.Rule{Name: "other-rule", Source: "mcr.microsoft.com/other/*", Target: "other/*"}}
	if _, err := ctl.CreateCacheRule(ctx, reg, second); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for {
		_, err := s.rs[1].srv.Control().CacheRule(ctx, reg, "other-rule")
		if err == nil {
			t.Logf("replica 1 listed a rule created through replica 0 after %v", time.Since(start).Round(10*time.Millisecond))
			break
		}
		if time.Now().After(start.Add(deploy.DefaultRefreshInterval + 5*time.Second)) {
			t.Fatalf("replica 1 does not list the rule created through replica 0 %v ago: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r2 := s.start(2, nil)
	last := ownedBy(0)
	code := 0
	for range 20 { // its first refresh runs as it becomes ready
		if code, _, _ = get(t, s.url(2)+"/v2/"+last+"/manifests/v1"); code == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("a replica started after the rule answered %d for %s, want 200", code, last)
	}
	if _, err := r2.srv.Control().CacheRule(ctx, reg, "team-rule"); err != nil {
		t.Fatalf("replica 2's admin API: %v", err)
	}

	// The CLI's local mode (--config) on the same container reads and
	// changes the same state while the replicas run.
	local, closeLocal, err := OpenLocal(ctx, s.config(0, nil), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeLocal()
	var got deploy.CacheRule
	if err := local.Do(ctx, http.MethodGet, "/registries/"+reg+"/cacheRules/team-rule", nil, nil, &got); err != nil || got.Target != "team/*" {
		t.Fatalf("local mode on Azure: rule %+v, %v; want team-rule to team/*", got, err)
	}
	third := deploy.CacheRule{Rule: rules.Rule{Name: "third-rule", Source: "mcr.microsoft.com/third/*", Target: "third/*"}}
	if err := local.Do(ctx, http.MethodPost, "/registries/"+reg+"/cacheRules", nil, third, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.srv.Control().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.srv.Control().CacheRule(ctx, reg, "third-rule"); err != nil {
		t.Fatalf("replica 2 after a refresh, a rule created in local mode: %v", err)
	}
}
