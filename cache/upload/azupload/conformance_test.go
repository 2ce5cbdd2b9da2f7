package azupload_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/internal/azuritetest"
)

// conformanceInstall installs the OCI conformance suite, pinned there.
const conformanceInstall = "scripts/install-tools.sh conformance"

// conformanceBinary finds the suite: AIRLOCK_CONFORMANCE_BIN, else
// bin/tools/conformance of the repository. Missing, the test skips naming
// the install command, or fails with CI=true.
func conformanceBinary(t *testing.T) (bin, root string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for root = dir; ; root = filepath.Dir(root) {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(root) == root {
			t.Fatal("repository root not found")
		}
	}
	bin = os.Getenv("AIRLOCK_CONFORMANCE_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "tools", "conformance")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the OCI conformance suite is missing (%v): install it with %s", err, conformanceInstall)
		}
		t.Skipf("the OCI conformance suite is not installed; install it with: %s", conformanceInstall)
	}
	return bin, root
}

var reSummary = regexp.MustCompile(`(?m)^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)$`)

// The OCI distribution-spec conformance suite (push, pull, discovery and
// management, the spec's development defaults) against one replica on
// the azure driver: content in azstore, the index in azmeta, upload
// sessions in azupload, all on Azurite. Every test passes, none skipped.
func testConformance(t *testing.T, srv *azuritetest.Server) {
	bin, root := conformanceBinary(t)
	c := newCluster(t, srv, 1, upload.Limits{})
	out := filepath.Join(root, ".ci", "out", "conformance", "azure")
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = out
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+strings.TrimPrefix(c.nodes[0].url, "http://"), "OCI_TLS=disabled", "OCI_VERSION=dev",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR="+out, "OCI_LOG=warn")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	os.WriteFile(filepath.Join(out, "stdout.txt"), stdout.Bytes(), 0o644)
	n := map[string]string{}
	for _, m := range reSummary.FindAllStringSubmatch(stdout.String(), -1) {
		n[m[1]] = m[2]
	}
	t.Logf("OCI conformance on the azure driver: %v; reports in %s", n, out)
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		t.Fatal(runErr)
	}
	if runErr != nil || !strings.Contains(stdout.String(), "OCI Conformance Result: Pass") || n["FAIL"] != "0" || n["Error"] != "0" ||
		n["Skip"] != "0" || n["Disabled"] != "0" || n["Pass"] == "" || n["Pass"] == "0" {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		t.Fatalf("conformance: %v %v\n%s", runErr, n, tail)
	}
	if calls := c.up.Total(); calls != 0 {
		t.Fatalf("the suite's pushes and pulls made %d upstream calls", calls)
	}
}
