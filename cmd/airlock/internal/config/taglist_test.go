package config

import (
	"strings"
	"testing"

	"github.com/airlock/airlock/rules"
)

func TestRuleTagList(t *testing.T) {
	t.Parallel()
	rule := "rules:\n  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*%s}\n"
	for _, c := range []struct{ field, local, wantErr string }{
		{"", "", ""},
		{", tagList: upstream", "", ""},
		{", tagList: local", "local", ""},
		{", tagList: cached", "", `TagListInvalid: tagList "cached" must be upstream`},
	} {
		cfg, err := Parse([]byte(strings.Replace(rule, "%s", c.field, 1)))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "aks-managed-mcr") {
				t.Errorf("%q: err %v, want %q", c.field, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.field, err)
		}
		set, err := cfg.RuleSet()
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := set.Get("aks-managed-mcr"); (r.TagList == rules.TagListLocal) != (c.local == "local") {
			t.Errorf("%q: rule %+v", c.field, r)
		}
	}
}
