package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables of the suite.
const (
	// envBin names a built airlock binary (make sets it to bin/airlock);
	// without it TestMain builds one from this checkout.
	envBin = "AIRLOCK_BIN"
	// envHelperURL turns the test binary into a one-shot HTTP client, so a
	// test can make a request from inside a network namespace with
	// `ip netns exec NS <test binary>` (the test process itself stays in
	// the host's namespace).
	envHelperURL    = "AIRLOCK_E2E_HELPER_URL"
	envHelperMethod = "AIRLOCK_E2E_HELPER_METHOD"
)

// airlockBin is the airlock binary every test runs, set once by TestMain.
var airlockBin string

func TestMain(m *testing.M) {
	if u := os.Getenv(envHelperURL); u != "" {
		os.Exit(helperRequest(os.Getenv(envHelperMethod), u))
	}
	bin, cleanup, err := findOrBuildAirlock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	airlockBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// findOrBuildAirlock returns $AIRLOCK_BIN, or builds ./cmd/airlock into a
// temporary directory (the Go build cache makes that quick).
func findOrBuildAirlock() (string, func(), error) {
	if bin := os.Getenv(envBin); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", nil, fmt.Errorf("%s=%s: %w (run make build)", envBin, bin, err)
		}
		return abs, func() {}, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "airlock-e2e-bin-")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "airlock")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/airlock")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build ./cmd/airlock: %v\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// repoRoot is the module root, two levels up from this package.
func repoRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("repository root not found from %s", root)
	}
	return root, nil
}

// helperRequest makes one request and writes the body to stdout; on a
// transport error it prints the error to stderr and exits 3; a non-2xx
// status exits 4.
func helperRequest(method, url string) int {
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, strings.TrimSpace(resp.Status))
		return 4
	}
	return 0
}
