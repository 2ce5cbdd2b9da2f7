package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The OCI distribution-spec conformance suite, pinned in
// scripts/install-tools.sh (github.com/opencontainers/distribution-spec/
// conformance v0.0.0-20260831232431-97274622c111), run against airlock
// serve in full mode: push, pull, content discovery and content
// management, with the spec's development defaults (OCI_VERSION=dev:
// upload cancel, digest headers and tag parameters too). This version
// of the suite takes OCI_REGISTRY, OCI_TLS, OCI_REPO1/OCI_REPO2 and
// OCI_API_*; the legacy OCI_ROOT_URL, OCI_NAMESPACE, OCI_CROSSMOUNT_NAMESPACE
// and OCI_TEST_* names are deprecated aliases (every API is on by default).
// Reports (junit.xml, report.html, results.yaml) go to
// .ci/out/conformance/<variant>.
const conformanceInstall = "scripts/install-tools.sh conformance"

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

func conformanceBinary(t *testing.T, root string) string {
	t.Helper()
	bin := os.Getenv("AIRLOCK_CONFORMANCE_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "tools", "conformance")
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("the OCI conformance suite is not installed; install it with: %s", conformanceInstall)
	}
	// In CI it must be there: build it now, and fail if that fails.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "install-tools.sh"), "conformance")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CI=true and the OCI conformance suite could not be built (%s): %v\n%s", conformanceInstall, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("CI=true and the OCI conformance suite is not at %s after %s", bin, conformanceInstall)
	}
	return bin
}

func TestOCIConformance(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	bin := conformanceBinary(t, root)
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
			os.RemoveAll(out)
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = out
			cmd.Env = append(os.Environ(),
				"OCI_REGISTRY="+s.addr, "OCI_TLS=disabled", "OCI_VERSION=dev",
				"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
				"OCI_RESULTS_DIR="+out, "OCI_LOG=warn")
			cmd.Env = append(cmd.Env, v.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			runErr := cmd.Run()
			os.WriteFile(filepath.Join(out, "stdout.txt"), stdout.Bytes(), 0o644)
			counts := conformanceCounts(stdout.String())
			t.Logf("OCI conformance (%s): %s; reports in %s", v.name, counts.line, out)
			if runErr != nil || counts.result != "Pass" || counts.n["FAIL"] != 0 || counts.n["Error"] != 0 || counts.n["Pass"] == 0 {
				t.Fatalf("conformance failed (%v): %s\n%s", runErr, counts.line, tail(stderr.String(), 4000))
			}
			if counts.n["Skip"] > v.maxSkips || (v.maxSkips == 0 && counts.n["Disabled"] != 0) {
				t.Fatalf("conformance skipped tests: %s", counts.line)
			}
		})
	}
}

type conformanceResult struct {
	result string
	n      map[string]int
	line   string
}

var (
	reResult = regexp.MustCompile(`OCI Conformance Result: (\w+)`)
	reCount  = regexp.MustCompile(`(?m)^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)$`)
)

// conformanceCounts reads the summary the suite prints.
func conformanceCounts(out string) conformanceResult {
	r := conformanceResult{n: map[string]int{}}
	if m := reResult.FindStringSubmatch(out); m != nil {
		r.result = m[1]
	}
	for _, m := range reCount.FindAllStringSubmatch(out, -1) {
		r.n[m[1]], _ = strconv.Atoi(m[2])
	}
	r.line = fmt.Sprintf("result %s: pass %d, fail %d, error %d, skip %d, disabled %d, total %d",
		r.result, r.n["Pass"], r.n["FAIL"], r.n["Error"], r.n["Skip"], r.n["Disabled"], r.n["Total"])
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
