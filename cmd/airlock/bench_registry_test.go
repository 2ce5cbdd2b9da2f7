package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/airlock/airlock/bench"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// startBenchMAR starts the emulator for one test.
func startBenchMAR(t *testing.T) *mar.Server {
	t.Helper()
	m, err := mar.New(mar.Config{Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startAuthAirlock runs airlock serve in front of the emulator with the
// aks-managed-mcr rule and auth on: one admin user, no anonymous pull.
func startAuthAirlock(t *testing.T, upstream, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, configtest.Write(t, configtest.Serve(upstreamtest.Unreachable(t), t.TempDir(), upstream, fmt.Sprintf(`rules:
  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*}
auth:
  users:
    - {name: admin, passwordHash: "%s", admin: true}
`, hash))))
	return "http://" + s.addr
}

// benchRun runs airlock bench with args and returns the exit code, stdout
// and stderr.
func benchRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"bench"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// readReport reads DIR/results.json.
func readReport(t *testing.T, dir string) *bench.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// airlock with auth on: nodes pull with ACR's token flow (a refresh token
// from /oauth2/exchange per node, access tokens from /oauth2/token), the
// admin's credentials read /metrics, and every blob is fetched upstream
// once. Without credentials, or with a wrong password, the preflight stops
// the run before any load: exit 1, one line.
func TestBenchRegistryACRExchange(t *testing.T) {
	t.Setenv("BENCH_PW", "s3cret")
	t.Setenv("BENCH_BAD_PW", "wrong")
	m := startBenchMAR(t)
	url := startAuthAirlock(t, m.URL(), "s3cret")
	common := []string{"--registry", url, "--prefix", "aks-managed-repository/", "--nodes", "3"}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"anonymous", nil, "401 Unauthorized pulling mcr.microsoft.com/oss/kubernetes/pause:3.10 with "},
		{"wrong password", []string{"--username", "admin", "--password-env", "BENCH_BAD_PW", "--acr-exchange"}, "ACR token exchange at " + url + "/oauth2/exchange"},
	} {
		code, stdout, stderr := benchRun(t, append(append(append([]string(nil), common...), "--out", t.TempDir()), c.args...)...)
		msg := strings.TrimRight(stderr, "\n")
		if code != 1 || strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "airlock bench: ") || !strings.Contains(msg, c.want) || stdout != "" {
			t.Errorf("%s: exit %d, stderr %q; want 1 and one line containing %q", c.name, code, msg, c.want)
		}
	}
	if n := m.Stats().Sum(mar.Filter{Kind: mar.KindBlobData}).Count; n != 0 {
		t.Fatalf("the refused runs fetched %d blobs upstream", n)
	}

	out := t.TempDir()
	code, stdout, stderr := benchRun(t, append(common, "--out", out, "--username", "admin", "--password-env", "BENCH_PW", "--acr-exchange")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep := readReport(t, out)
	run := rep.Results[0].Runs[0]
	if run.FailedPulls != 0 || run.Clients != 3 || !strings.Contains(rep.Registries[0].Credentials, "ACR token exchange as admin") {
		t.Fatalf("%d failed (%s), %d nodes, credentials %q", run.FailedPulls, run.FirstFailure, run.Clients, rep.Registries[0].Credentials)
	}
	u := run.Upstream
	if u.Source != "airlock" || u.BlobFetches != int64(rep.Catalog.Blobs) || u.CacheMisses == 0 {
		t.Fatalf("upstream from airlock's metrics: %+v (want %d blob GETs)", u, rep.Catalog.Blobs)
	}
	if !strings.Contains(stdout, "pull @storm") || !strings.Contains(stdout, "upstream (airlock)") {
		t.Errorf("table:\n%s", stdout)
	}

	// No flags: the Docker config's credentials for the registry's host.
	docker := t.TempDir()
	host := strings.TrimPrefix(url, "http://")
	auth := base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))
	os.WriteFile(filepath.Join(docker, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", docker)
	out = t.TempDir()
	if code, stdout, stderr := benchRun(t, append(common, "--out", out)...); code != 0 {
		t.Fatalf("with the Docker config: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if rep := readReport(t, out); rep.Results[0].Runs[0].FailedPulls != 0 || !strings.Contains(rep.Registries[0].Credentials, "Docker config") ||
		rep.Results[0].Runs[0].Upstream.Source != "airlock" {
		t.Fatalf("with the Docker config: credentials %q, %s", rep.Registries[0].Credentials, rep.Results[0].Runs[0].FirstFailure)
	}
}

// A missing image and an unreachable registry: exit 1, one line, before
// any load.
func TestBenchRegistryPreflight(t *testing.T) {
	t.Parallel()
	m := startBenchMAR(t)
	list := filepath.Join(t.TempDir(), "images.txt")
	os.WriteFile(list, []byte("mcr.microsoft.com/oss/kubernetes/pause:3.10\nmcr.microsoft.com/oss/kubernetes/pause:0.0-missing\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--registry", m.URL(), "--images", list}, "image mcr.microsoft.com/oss/kubernetes/pause:0.0-missing not found on " + m.URL()},
		{[]string{"--registry", "http://" + upstreamtest.Unreachable(t)}, "is unreachable: "},
	} {
		code, _, stderr := benchRun(t, append(c.args, "--out", t.TempDir())...)
		msg := strings.TrimRight(stderr, "\n")
		if code != 1 || strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
			t.Errorf("exit %d, stderr %q; want 1 and one line containing %q", code, msg, c.want)
		}
	}
	if n := m.Stats().Sum(mar.Filter{Kind: mar.KindBlobData}).Count; n != 0 {
		t.Fatalf("%d blobs fetched", n)
	}
}
