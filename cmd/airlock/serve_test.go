package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/upstreamtest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bad configurations are refused with one line naming the problem, exit 2.
func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	base := "listen: 127.0.0.1:0\nstorage:\n  dir: %s\nrules:\n%s"
	cases := []struct {
		name, rules, want string
	}{
		{"bad name", "  - {name: ab, source: mcr.microsoft.com/*, target: x/*}\n", `cache rule "ab": CacheRuleNameInvalid`},
		{"overlap", "  - {name: all-mcr, source: mcr.microsoft.com/*, target: \"*\"}\n  - {name: library, source: mcr.microsoft.com/library/*, target: library/*}\n", `cache rule "library": WildcardTargetOverlap`},
		{"duplicate", "  - {name: one-rule, source: mcr.microsoft.com/a, target: a}\n  - {name: one-rule, source: mcr.microsoft.com/b, target: b}\n", `CacheRuleNameAlreadyExists`},
		{"no host", "  - {name: nohost, source: dotnet/*, target: dotnet/*}\n", `SourceRepositoryInvalid`},
		{"unknown key", "  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: x/*, ttl: 5m}\n", `rules[0].ttl: unknown key; did you mean tagTTL?`},
		{"bad ttl", "  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: x/*, tagTTL: soon}\n", `rules[0].tagTTL: "soon" is not a duration`},
		{"missing credential set", "  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: x/*, credentialSet: nope}\n", `credential set "nope" is not defined`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := writeConfig(t, fmt.Sprintf(base, t.TempDir(), c.rules))
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"serve", "--config", p}, &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			msg := strings.TrimRight(stderr.String(), "\n")
			if strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
				t.Fatalf("want one line containing %q, got %q", c.want, msg)
			}
		})
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("serve without --config: exit %d", code)
	}
	if code := run(context.Background(), []string{"bogus"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// serve starts, answers pulls through its rule, exposes /metrics and
// /healthz, and shuts down cleanly when its context ends.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 1000, 1)
	raw, _ := img.RawManifest()
	addr := upstreamtest.Unreachable(t) // a free port
	p := writeConfig(t, fmt.Sprintf(`listen: %s
storage:
  dir: %s
upstreams:
  - host: mcr.microsoft.com
    endpoint: %s
rules:
  - name: aks-managed-mcr
    source: mcr.microsoft.com/*
    target: aks-managed-repository/*
    tagTTL: 1m
log:
  level: warn
`, addr, t.TempDir(), up.URL()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout bytes.Buffer
	go func() { done <- run(ctx, []string{"serve", "--config", p}, &stdout, io.Discard) }()
	base := "http://" + addr
	waitHTTP(t, base+"/healthz")
	waitHTTP(t, base+"/readyz") // the store check is done
	resp, err := http.Get(base + "/v2/aks-managed-repository/oss/kubernetes/pause/manifests/3.10?ns=mcr.microsoft.com")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, raw) {
		t.Fatalf("pull through serve: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), `airlock_cache_misses_total{kind="manifest",rule="aks-managed-mcr"} 1`) {
		t.Fatalf("metrics lack the miss:\n%s", mb)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}
