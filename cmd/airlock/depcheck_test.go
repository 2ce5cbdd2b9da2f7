package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/airlock/airlock"

// The dependency direction of STYLE.md: contracts import nothing of ours,
// the registry front end only the cache contract, and nothing but this
// command wires implementations together or imports the bench.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pkg     string
		allowed []string // module packages it may depend on (transitively)
	}{
		{"rules", nil},
		// References and tags: one grammar, on the rules' repository names.
		{"reference", []string{"rules"}},
		{"cache", nil},
		{"cache/content", nil},
		{"upstream", nil},
		{"registry", []string{"cache", "registry/auth"}},
		{"registry/auth", nil},
		// The ACR-style authorizer implements the auth contract and knows
		// nothing else of airlock.
		{"registry/auth/acrauth", []string{"registry/auth"}},
		{"cache/engine", []string{"cache", "cache/content", "cache/meta", "reference", "rules", "upstream"}},
		{"upstream/ociclient", []string{"upstream"}},
		{"cache/evict", []string{"cache/content", "cache/meta", "reference", "rules"}},
		{"cache/check", []string{"cache/content", "cache/meta"}},
		{"upstream/images", nil},
		{"cache/bundle", []string{"cache/content", "cache/meta"}},
		// The control module reaches the data plane only through rules and
		// the engine's SetRules (RuleSetter); never cache internals.
		{"deploy", []string{"rules", "upstream"}},
		{"deploy/badgerstore", []string{"deploy", "rules", "upstream"}},
		{"deploy/adminapi", []string{"deploy", "rules", "upstream"}},
		// The control CLI builds admin API calls: it knows the API, not the
		// service's storage or the data plane.
		{"deploy/controlcli", []string{"deploy", "deploy/adminapi", "rules", "upstream"}},
		// Shared utilities import nothing of ours; anyone may use them.
		{"internal/badgerutil", nil},
		{"internal/progress", nil},
		{"bench", []string{"upstream/mar", "upstream/mar/catalog", "upstream/mar/fault", "upstream/mar/fromdir", "upstream/mar/internal/units", "reference", "rules"}},
	}
	for _, c := range cases {
		t.Run(c.pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+c.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			allowed := map[string]bool{module + "/" + c.pkg: true}
			for _, a := range c.allowed {
				allowed[module+"/"+a] = true
			}
			for _, dep := range strings.Fields(string(out)) {
				if strings.HasPrefix(dep, module+"/internal/") && c.pkg != strings.TrimPrefix(dep, module+"/") {
					continue // a shared utility (checked by its own row)
				}
				if strings.HasPrefix(dep, module+"/") && !allowed[dep] {
					t.Errorf("%s depends on %s", c.pkg, dep)
				}
				if strings.HasPrefix(dep, module+"/bench") && !allowed[dep] {
					t.Errorf("%s imports the bench", c.pkg)
				}
			}
		})
	}
}
