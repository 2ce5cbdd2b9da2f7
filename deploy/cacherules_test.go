package deploy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
)

// The bound registry's rules are served with the configuration file's from
// the moment they are created; conflicts and captured pushed repositories
// are refused with ACR's codes.
func TestCacheRulesOfTheBoundRegistry(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "password")
	ok(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	e := newEnv(t, func(b *deploy.Binding) {
		b.Registry = "myacr"
		b.BaseRules = []rules.Rule{{Name: "library", Source: "docker.io/library/*", Target: "library/*"}}
		b.BaseCredentials = map[string]upstream.Credentials{"hub": {Username: "me"}}
		b.Repos = pushed{"team/app"}
	})
	ctx := context.Background()
	if _, ok := e.eng.serves("library/nginx"); !ok {
		t.Fatal("base rule not served before the registry exists")
	}
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "MyAcr"}))
	calls := e.eng.calls
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "myacr", deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*", TagTTL: units.Duration(time.Minute)}}))
	if up, ok := e.eng.serves("dotnet/runtime"); !ok || up != "mcr.microsoft.com/dotnet/runtime" || e.eng.calls != calls+1 {
		t.Fatalf("new rule not served at once: %q %v", up, ok)
	}
	if _, ok := e.eng.serves("library/nginx"); !ok {
		t.Fatal("base rule dropped")
	}

	createRule := func(r rules.Rule) func() error {
		return func() error { return errOf(e.svc.CreateCacheRule(ctx, "myacr", deploy.CacheRule{Rule: r})) }
	}
	updateRule := func(r rules.Rule) func() error {
		return func() error { return errOf(e.svc.UpdateCacheRule(ctx, "myacr", deploy.CacheRule{Rule: r})) }
	}
	cases := []struct {
		name string
		op   func() error
		code string
	}{
		{"overlaps a config rule", createRule(rules.Rule{Name: "all-hub", Source: "docker.io/*", Target: "*"}), string(rules.CodeWildcardOverlap)},
		{"overlaps its own rule", createRule(rules.Rule{Name: "dotnet-all", Source: "mcr.microsoft.com/dotnet/sdk/*", Target: "dotnet/sdk/*"}), string(rules.CodeWildcardOverlap)},
		{"captures a pushed repository", createRule(rules.Rule{Name: "team-rule", Source: "mcr.microsoft.com/team/*", Target: "team/*"}), string(rules.CodeExistingRepoMatch)},
		{"bad name", createRule(rules.Rule{Name: "x", Source: "mcr.microsoft.com/a", Target: "a"}), string(rules.CodeInvalidName)},
		{"unknown credential set", createRule(rules.Rule{Name: "private", Source: "ghcr.io/me/app", Target: "me/app", CredentialSet: "nope"}), deploy.CodeCredentialSetNotFound},
		{"change the source", updateRule(rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/other/*"}), string(rules.CodeImmutable)},
		{"update a config rule", updateRule(rules.Rule{Name: "library", CredentialSet: "hub"}), deploy.CodeConfigRule},
		{"delete a config rule", func() error { return e.svc.DeleteCacheRule(ctx, "myacr", "library") }, deploy.CodeConfigRule},
		{"delete a missing rule", func() error { return e.svc.DeleteCacheRule(ctx, "myacr", "nothere") }, string(rules.CodeNotFound)},
		{"rule in a missing registry", func() error { return e.svc.DeleteCacheRule(ctx, "noacr", "dotnet") }, deploy.CodeNotFound},
		{"credential set named like a config one", func() error {
			return errOf(e.svc.CreateCredentialSet(ctx, "myacr", deploy.CredentialSet{Name: "hub", Username: "x"}))
		}, deploy.CodeRuleConflictsWithConfig},
		{"credential set with an unset variable", func() error {
			return errOf(e.svc.CreateCredentialSet(ctx, "myacr", deploy.CredentialSet{Name: "ghcr", Username: "x", PasswordEnv: "AIRLOCK_TEST_UNSET_VARIABLE"}))
		}, deploy.CodeCredentialSetUnresolvable},
		{"duplicate registry", func() error { return errOf(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "myacr"})) }, deploy.CodeAlreadyExists},
		{"registry name with a dash", func() error { return errOf(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "my-acr"})) }, deploy.CodeInvalidParameter},
	}
	for _, c := range cases {
		if got := code(t, c.op()); got != c.code {
			t.Errorf("%s: code %q, want %q", c.name, got, c.code)
		}
	}

	// Credential sets: the rule's credentials reach the engine; update may
	// change only the credential set; a set in use cannot go.
	must[deploy.CredentialSet](t)(e.svc.CreateCredentialSet(ctx, "myacr", deploy.CredentialSet{Name: "mcr-creds", LoginServer: "mcr.microsoft.com", Username: "bob", PasswordFile: secret}))
	r := must[deploy.CacheRule](t)(e.svc.UpdateCacheRule(ctx, "myacr", deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", CredentialSet: "mcr-creds"}}))
	if r.CredentialSet != "mcr-creds" || r.Source != "mcr.microsoft.com/dotnet/*" || r.TagTTL != units.Duration(time.Minute) {
		t.Fatalf("updated rule %+v", r)
	}
	if got := e.eng.creds["mcr-creds"]; got.Username != "bob" || got.Password != "s3cret" {
		t.Fatalf("engine credentials %v", got)
	}
	if err := e.svc.DeleteCredentialSet(ctx, "myacr", "mcr-creds"); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("deleting a credential set in use: %v", err)
	}
	rs := must[[]deploy.CacheRule](t)(e.svc.CacheRules(ctx, "myacr"))
	if len(rs) != 2 || rs[0].Name != "dotnet" || rs[1].Name != "library" || !rs[1].FromConfig || rs[0].FromConfig {
		t.Fatalf("rules %+v", rs)
	}
	ok(t, e.svc.DeleteCacheRule(ctx, "myacr", "dotnet"))
	ok(t, e.svc.DeleteCredentialSet(ctx, "myacr", "mcr-creds"))
	if _, ok := e.eng.serves("dotnet/runtime"); ok {
		t.Fatal("deleted rule still served")
	}
}

// Passwords given in the request are kept but never shown.
func TestCredentialSetPasswordIsNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "otheracr"}))
	cs := must[deploy.CredentialSet](t)(e.svc.CreateCredentialSet(ctx, "otheracr", deploy.CredentialSet{Name: "hub", Username: "u", Password: "hunter2"}))
	list := must[[]deploy.CredentialSet](t)(e.svc.CredentialSets(ctx, "otheracr"))
	if cs.Password != "<redacted>" || len(list) != 1 || list[0].Password != "<redacted>" {
		t.Fatalf("password shown: %+v %+v", cs, list)
	}
}

// Stored rules that conflict with the configuration file's stop the
// service from starting, with the conflict named.
func TestConfigConflictRefusedAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(b *deploy.Binding) { b.Registry = "myacr" })
	ctx := context.Background()
	must[*deploy.RegistryInfo](t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: "myacr"}))
	must[deploy.CacheRule](t)(e.svc.CreateCacheRule(ctx, "myacr", deploy.CacheRule{Rule: rules.Rule{Name: "everything", Source: "mcr.microsoft.com/*", Target: "*"}}))
	e.bind.BaseRules = []rules.Rule{{Name: "library", Source: "docker.io/library/*", Target: "library/*"}}
	_, err := deploy.New(ctx, e.store, e.bind, nil, nil)
	if code(t, err) != string(rules.CodeWildcardOverlap) {
		t.Fatalf("start with conflicting rules: %v", err)
	}
}
