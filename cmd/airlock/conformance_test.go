package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock/airlock/internal/conformancetest"
	"golang.org/x/crypto/bcrypt"
)

// The OCI distribution-spec conformance suite, pinned in
// scripts/install-tools.sh (github.com/opencontainers/distribution-spec/
// conformance v0.0.0-20260831232431-97274622c111), run against airlock
// serve in full mode by internal/conformancetest. Reports (junit.xml,
// report.html, results.yaml) go to .ci/out/conformance/<variant>.

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s", root)
	}
	return root
}

func TestOCIConformance(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	bin := conformancetest.Binary(t, root)
	h, err := bcrypt.GenerateFromPassword([]byte("conformance-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name, config string
		env          []string
		maxSkips     int
	}{
		// Auth off: every test passes, none skipped.
		{"open", "", nil, 0},
		// Auth on, through the token flow. The suite reuses a token scoped
		// to the target repository for cross-repository mounts; without
		// pull on the source in the token (and with anonymous mounts off
		// under auth) airlock answers 202 and the suite falls back to an
		// upload: 4 skips, by design.
		{"auth", "auth:\n  users:\n    - {name: conformance, passwordHash: '" + string(h) + "'}\n",
			[]string{"OCI_USERNAME=conformance", "OCI_PASSWORD=conformance-pw"}, 4},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s := startSecureServe(t, t.TempDir(), "listen: %s\nstorage:\n  dir: %s\nrules:\n"+
				"  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*}\nlog:\n  level: warn\n"+v.config)
			out := filepath.Join(root, ".ci", "out", "conformance", v.name)
			r, runErr := conformancetest.Run(t, bin, s.addr, out, v.env...)
			t.Logf("OCI conformance (%s): %s; reports in %s", v.name, r.Line, out)
			if runErr != nil || r.Failed() {
				t.Fatalf("conformance failed (%v): %s\n%s", runErr, r.Line, r.Stderr)
			}
			if r.N["Skip"] > v.maxSkips || (v.maxSkips == 0 && r.N["Disabled"] != 0) {
				t.Fatalf("conformance skipped tests: %s", r.Line)
			}
		})
	}
}
