package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/internal/proctest"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

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
			p := configtest.Write(t, fmt.Sprintf(base, t.TempDir(), c.rules))
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
	p := configtest.Write(t, configtest.Serve(addr, t.TempDir(), up.URL(), configtest.MCRRule))
	s := startServeReady(t, p) // the store check is done
	base := s.base
	if !proctest.StatusOK(base + "/healthz") {
		t.Fatal("/healthz does not answer 200")
	}
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
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

// serving is airlock serve running in this test process.
type serving struct {
	t              *testing.T
	addr           string // host:port it listens on
	base           string // http(s)://addr
	stdout, stderr *proctest.Buffer
	cancel         context.CancelFunc
	exited         chan struct{}
	code           int // after exited
}

var reServingOn = regexp.MustCompile(`airlock: serving on (https?)://(\S+) `)

// startServe runs serve --config path until the test ends (then it must
// exit 0) or stop is called, and returns once it listens (its store check
// may still run: waitReady waits for it).
func startServe(t *testing.T, path string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{t: t, cancel: cancel, stdout: &proctest.Buffer{}, stderr: &proctest.Buffer{}, exited: make(chan struct{})}
	go func() {
		defer close(s.exited)
		s.code = run(ctx, []string{"serve", "--config", path}, s.stdout, s.stderr)
	}()
	t.Cleanup(func() {
		if code := s.stop(); code != 0 {
			t.Errorf("serve exited %d: %s", code, s.stderr)
		}
	})
	var m []string
	proctest.Until(t, "airlock serve listens", 20*time.Second, s.exited, s.stderr.String, func() bool {
		m = reServingOn.FindStringSubmatch(s.stdout.String())
		return m != nil
	})
	s.addr, s.base = m[2], m[1]+"://"+m[2]
	return s
}

// startServeReady is startServe, returning once /readyz answers 200 (the
// store check is done; the API answers 503 until then).
func startServeReady(t *testing.T, path string) *serving {
	t.Helper()
	s := startServe(t, path)
	s.waitReady()
	return s
}

// waitReady waits until /readyz answers 200.
func (s *serving) waitReady() {
	s.t.Helper()
	proctest.Until(s.t, "airlock serve is ready", 20*time.Second, s.exited, s.stderr.String, func() bool {
		return proctest.StatusOK(s.base + "/readyz")
	})
}

// stop ends serve (as SIGTERM would: its context ends) and returns its
// exit code; stopping it again returns the same code.
func (s *serving) stop() int {
	s.t.Helper()
	s.cancel()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Fatal("serve did not stop")
	}
	return s.code
}
