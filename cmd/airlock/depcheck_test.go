package main

import (
	"go/build"
	"os/exec"
	"path"
	"path/filepath"
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
		{"cache/meta", nil},
		// The metadata index's implementations and its shared suite know
		// only the contract.
		{"cache/meta/badgermeta", []string{"cache/meta"}},
		{"cache/meta/memmeta", []string{"cache/meta"}},
		{"cache/meta/metatest", []string{"cache/meta"}},
		// The index on Azure Blob Storage: the contract and the container
		// client, nothing else.
		{"cache/meta/azmeta", []string{"cache/meta", "storage/azure"}},
		{"upstream", nil},
		{"registry", []string{"cache", "registry/auth"}},
		{"registry/auth", nil},
		// The ACR-style authorizer implements the auth contract and knows
		// nothing else of airlock.
		{"registry/auth/acrauth", []string{"registry/auth"}},
		// Manifest bodies are read in one place, by the engine and the
		// bundle importer alike.
		{"cache/manifest", nil},
		{"cache/engine", []string{"cache", "cache/content", "cache/manifest", "cache/meta", "cache/upload", "cache/upload/memupload", "reference", "rules", "upstream"}},
		// Upload sessions: the contract knows the content contract; the
		// in-process store the contract too; the shared one the session
		// records of the Azure index and the container client.
		{"cache/upload", []string{"cache/content"}},
		{"cache/upload/memupload", []string{"cache/content", "cache/upload"}},
		{"cache/upload/uploadtest", []string{"cache/content", "cache/upload"}},
		{"cache/upload/azupload", []string{"cache/content", "cache/meta", "cache/meta/azmeta", "cache/upload", "storage/azure"}},
		{"upstream/ociclient", []string{"upstream"}},
		{"cache/evict", []string{"cache/content", "cache/meta", "reference", "rules"}},
		{"cache/check", []string{"cache/content", "cache/meta"}},
		{"upstream/images", nil},
		{"cache/bundle", []string{"cache/content", "cache/manifest", "cache/meta"}},
		// Azure Blob Storage: the container client knows nothing of
		// airlock; the content store on it only the content contract (and
		// the local ingest file it shares with fsstore).
		{"storage/azure", nil},
		{"storage/azure/azuretest", []string{"storage/azure"}},
		{"cache/content/azstore", []string{"cache/content", "cache/content/internal/blobfile", "storage/azure"}},
		// What replicas need among themselves (membership, ownership, the
		// peer credential, the peer HTTP surface, fill records) knows the
		// container client and nothing of the engine or the registry.
		{"cache/cluster", []string{"storage/azure"}},
		// The control module reaches the data plane only through rules and
		// the engine's SetRules (RuleSetter); never cache internals.
		{"deploy", []string{"deploy/aks", "rules", "upstream"}},
		{"deploy/badgerstore", []string{"deploy", "deploy/aks", "rules", "upstream"}},
		// The control state shared by replicas: the contract and the
		// container client; the stores' suite only the contract.
		{"deploy/azstate", []string{"deploy", "deploy/aks", "rules", "upstream", "storage/azure"}},
		{"deploy/storetest", []string{"deploy", "deploy/aks", "rules", "upstream"}},
		{"deploy/adminapi", []string{"deploy", "deploy/aks", "rules", "upstream"}},
		// The control CLI builds admin API calls: it knows the API, not the
		// service's storage or the data plane.
		{"deploy/controlcli", []string{"deploy", "deploy/adminapi", "deploy/aks", "rules", "upstream"}},
		// What a node pulls at bootstrap: pure data, which the MAR emulator
		// may import to generate its catalog.
		{"deploy/aks", nil},
		// Shared utilities import nothing of ours; anyone may use them.
		{"internal/badgerutil", nil},
		{"internal/flight", nil},
		{"internal/progress", nil},
		{"internal/azurite", nil},
		{"internal/azuritetest", []string{"internal/azurite"}},
		{"cmd/airlock/internal/configtest", []string{"storage/azure"}},
		{"internal/conformancetest", nil},
		{"internal/units", nil},
		{"internal/ocierr", nil},
		{"internal/httprec", nil},
		{"internal/promtest", nil},
		{"internal/proctest", nil},
		{"internal/leaktest", nil},
		{"internal/clocktest", nil},
		{"internal/polltest", nil},
		{"internal/sleep", nil},
		{"bench", []string{"deploy/aks", "upstream/images", "upstream/mar", "upstream/mar/catalog", "upstream/mar/fault", "upstream/mar/fromdir", "reference", "rules"}},
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

// The product does not lean on the lab: no package outside the MAR
// emulator (upstream/mar/...) and the bench depends on the emulator, even
// indirectly, except this command's main package (which hosts the lab and
// `airlock mar`: only its files named lab*, mar* and bench* import it), its
// e2e tests, and packages under cmd/airlock named lab*, mar* or bench*
// (those launchers). Test files may use the emulator as an upstream; they
// are not part of the product.
func TestProductDoesNotImportEmulator(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const emulator = module + "/upstream/mar"
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list listed %d packages: %s", len(lines), out)
	}
	checked := 0
	for _, line := range lines {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module+"/")
		if emulatorSide(pkg) {
			continue
		}
		checked++
		for _, dep := range f[1:] {
			if dep == emulator || strings.HasPrefix(dep, emulator+"/") {
				t.Errorf("%s depends on the MAR emulator (%s)", pkg, dep)
				break
			}
		}
	}
	if checked == 0 {
		t.Fatal("no product package checked")
	}
	// Within this package, only the lab, mar and bench launchers do.
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for imp, pos := range pkg.ImportPos {
		if imp != emulator && !strings.HasPrefix(imp, emulator+"/") {
			continue
		}
		for _, p := range pos {
			if !launcher(filepath.Base(p.Filename)) {
				t.Errorf("%s imports %s: only the lab, mar and bench launchers may", filepath.Base(p.Filename), imp)
			}
		}
	}
}

// launcher reports whether a file or package name is one of the lab, mar
// or bench launchers.
func launcher(name string) bool {
	for _, p := range []string{"lab", "mar", "bench"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// emulatorSide reports whether a package (path within the module) may
// depend on the MAR emulator.
func emulatorSide(pkg string) bool {
	switch {
	case pkg == "upstream/mar" || strings.HasPrefix(pkg, "upstream/mar/"),
		pkg == "bench" || strings.HasPrefix(pkg, "bench/"),
		pkg == "cmd/airlock", pkg == "cmd/airlock/e2e":
		return true
	case strings.HasPrefix(pkg, "cmd/airlock/"):
		return launcher(path.Base(pkg))
	}
	return false
}

// Test-support packages (named …test: upstreamtest, metatest, proctest,
// leaktest, …) serve tests only: no package's non-test files import one,
// except another test-support package's.
func TestTestSupportOnlyInTests(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	supports := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if testSupport(f[0]) {
			supports++
			continue
		}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module+"/") && testSupport(imp) {
				t.Errorf("%s imports the test-support package %s outside its tests", strings.TrimPrefix(f[0], module+"/"), imp)
			}
		}
	}
	if supports < 5 {
		t.Fatalf("only %d test-support packages found:\n%s", supports, out)
	}
}

// testSupport reports whether an import path names a test-support package.
func testSupport(pkg string) bool {
	return strings.HasPrefix(pkg, module+"/") && strings.HasSuffix(path.Base(pkg), "test")
}
