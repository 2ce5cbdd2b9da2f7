// Package conformancetest runs the OCI distribution-spec conformance suite
// (the binary "conformance", pinned and built by scripts/install-tools.sh
// conformance) against a registry, for tests: in full mode (push, pull,
// content discovery, content management) with the spec's development
// defaults (OCI_VERSION=dev: upload cancel, digest headers and tag
// parameters too). This version of the suite takes OCI_REGISTRY, OCI_TLS,
// OCI_REPO1/OCI_REPO2 and OCI_API_*; the legacy OCI_ROOT_URL,
// OCI_NAMESPACE, OCI_CROSSMOUNT_NAMESPACE and OCI_TEST_* names are
// deprecated aliases (every API is on by default).
package conformancetest

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
)

// Install is the command that installs the suite.
const Install = "scripts/install-tools.sh conformance"

// Binary returns the suite's executable: AIRLOCK_CONFORMANCE_BIN, else
// bin/tools/conformance under the repository root. When it is missing the
// test is skipped naming Install; with CI=true it is built now, and the
// test fails if that fails.
func Binary(t testing.TB, root string) string {
	t.Helper()
	bin := os.Getenv("AIRLOCK_CONFORMANCE_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "tools", "conformance")
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("the OCI conformance suite is not installed; install it with: %s", Install)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "install-tools.sh"), "conformance")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CI=true and the OCI conformance suite could not be built (%s): %v\n%s", Install, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("CI=true and the OCI conformance suite is not at %s after %s", bin, Install)
	}
	return bin
}

// Result is the summary the suite prints.
type Result struct {
	// Result is the overall verdict ("Pass" when everything passed).
	Result string
	// N counts the tests by outcome: Disabled, Skip, Pass, FAIL, Error,
	// Total.
	N map[string]int
	// Line is the summary on one line, for logs.
	Line string
	// Stderr is the tail of the suite's error output.
	Stderr string
}

// Failed reports whether anything failed or errored, or nothing passed.
func (r Result) Failed() bool {
	return r.Result != "Pass" || r.N["FAIL"] != 0 || r.N["Error"] != 0 || r.N["Pass"] == 0
}

var (
	reResult = regexp.MustCompile(`OCI Conformance Result: (\w+)`)
	reCount  = regexp.MustCompile(`(?m)^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)$`)
)

// Run runs the suite bin against the registry at addr (host:port, plain
// HTTP) on the repositories conformance/repo1 and conformance/repo2, with
// env added to its environment (credentials). Its reports (junit.xml,
// report.html, results.yaml, stdout.txt) go to out, emptied first. It
// returns the summary and the run's error (the suite exits non-zero when a
// test fails).
func Run(t testing.TB, bin, addr, out string, env ...string) (Result, error) {
	t.Helper()
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = out
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+addr, "OCI_TLS=disabled", "OCI_VERSION=dev",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR="+out, "OCI_LOG=warn")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	os.WriteFile(filepath.Join(out, "stdout.txt"), stdout.Bytes(), 0o644)
	r := summary(stdout.String())
	r.Stderr = tail(stderr.String(), 4000)
	return r, runErr
}

// summary reads the summary the suite prints.
func summary(out string) Result {
	r := Result{N: map[string]int{}}
	if m := reResult.FindStringSubmatch(out); m != nil {
		r.Result = m[1]
	}
	for _, m := range reCount.FindAllStringSubmatch(out, -1) {
		r.N[m[1]], _ = strconv.Atoi(m[2])
	}
	r.Line = fmt.Sprintf("result %s: pass %d, fail %d, error %d, skip %d, disabled %d, total %d",
		r.Result, r.N["Pass"], r.N["FAIL"], r.N["Error"], r.N["Skip"], r.N["Disabled"], r.N["Total"])
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
