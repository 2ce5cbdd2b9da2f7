package adminapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
)

// A cache rule's tagList goes through the admin API: set at creation,
// shown, changed by an update, and refused when it is not a known value.
func TestCacheRuleTagList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t)
	if err := c.Do(ctx, "POST", "/registries", nil, deploy.RegistrySpec{Name: "teamacr"}, nil); err != nil {
		t.Fatal(err)
	}
	rule := deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*", TagList: rules.TagListLocal}}
	var got deploy.CacheRule
	if err := c.Do(ctx, "POST", "/registries/teamacr/cacheRules", nil, rule, &got); err != nil || got.TagList != rules.TagListLocal {
		t.Fatalf("create: %+v %v", got, err)
	}
	if err := c.Do(ctx, "GET", "/registries/teamacr/cacheRules/dotnet", nil, nil, &got); err != nil || got.TagList != rules.TagListLocal {
		t.Fatalf("show: %+v %v", got, err)
	}
	if err := c.Do(ctx, "PATCH", "/registries/teamacr/cacheRules/dotnet", nil, deploy.CacheRule{Rule: rules.Rule{TagList: rules.TagListUpstream}}, &got); err != nil || got.TagList != rules.TagListUpstream {
		t.Fatalf("update: %+v %v", got, err)
	}
	bad := deploy.CacheRule{Rule: rules.Rule{Name: "other", Source: "mcr.microsoft.com/other/*", Target: "other/*", TagList: "everything"}}
	var de *deploy.Error
	if err := c.Do(ctx, "POST", "/registries/teamacr/cacheRules", nil, bad, nil); !errors.Is(err, deploy.ErrInvalid) || !errors.As(err, &de) || de.Code != string(rules.CodeInvalidTagList) {
		t.Fatalf("bad tagList: %v", err)
	}
}
