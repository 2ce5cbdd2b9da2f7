package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// startSecureServe runs serve with a config made from body (with %[1]s
// the listen address and %[2]s the storage dir) and waits until it listens.
func startSecureServe(t *testing.T, dir, body string) *serving {
	t.Helper()
	return startServe(t, configtest.Write(t, fmt.Sprintf(body, upstreamtest.Unreachable(t), dir)))
}

func TestServeTLSAuto(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := "listen: %s\nstorage:\n  dir: %s\ntls:\n  auto: true\n  hosts: [registry.test]\nlog:\n  level: warn\n"
	s := startSecureServe(t, dir, cfg)
	m := regexp.MustCompile(`TLS CA certificate (\S+) \(hosts.toml: ca = "(\S+)"\)`).FindStringSubmatch(s.stdout.String())
	if m == nil || m[1] != m[2] || !filepath.IsAbs(m[1]) || !strings.Contains(s.stdout.String(), "serving on https://") {
		t.Fatalf("serve output lacks the CA path: %q", s.stdout.String())
	}
	ca, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	_, port, _ := net.SplitHostPort(s.addr)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + net.JoinHostPort(host, port) + "/v2/")
		if err != nil {
			t.Fatalf("%s with the CA: %v", host, err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", host, resp.StatusCode)
		}
	}
	tr := &http.Transport{}
	if _, err := (&http.Client{Transport: tr}).Get("https://" + s.addr + "/v2/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	tr.CloseIdleConnections()
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	// A restart keeps the CA nodes already trust.
	s2 := startSecureServe(t, dir, cfg)
	if again, _ := os.ReadFile(m[1]); !bytes.Equal(again, ca) {
		t.Fatal("the CA changed across a restart")
	}
	s2.stop()
}

// A client that never finishes its headers is cut at the header timeout,
// and an idle keep-alive connection at the idle timeout.
func TestServeSlowLorisHeaders(t *testing.T) {
	t.Parallel()
	s := startSecureServe(t, t.TempDir(), "listen: %s\nstorage:\n  dir: %s\nhttp:\n  readHeaderTimeout: 300ms\n  idleTimeout: 300ms\nlog:\n  level: warn\n")
	idle, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	io.Copy(io.Discard, br) // returns when the server closes the idle connection
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("an idle keep-alive connection stayed open %v", took)
	}

	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start = time.Now()
	fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, conn) // returns when the server hangs up
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the server waited %v for headers", took)
	}
}

func TestServeRefusesBadSecurityConfig(t *testing.T) {
	t.Parallel()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cases := []struct{ name, body, want string }{
		{"plain password", "auth:\n  users:\n    - {name: a, passwordHash: hunter2}\n", "not a bcrypt hash"},
		{"empty auth", "auth: {}\n", "define users, tokens or anonymousPull"},
		{"bad scope", "auth:\n  tokens:\n    - name: t\n      passwordHash: '" + string(h) + "'\n      scopes: [{repositories: [x], actions: [write]}]\n", `action "write"`},
		{"cert without key", "tls:\n  cert: /nope.pem\n", "cert and key go together"},
		{"auto and cert", "tls:\n  auto: true\n  cert: a\n  key: b\n", "either auto or cert"},
		{"missing cert file", "tls:\n  cert: /nonexistent/c.pem\n  key: /nonexistent/k.pem\n", "config: tls"},
		{"negative timeout", "push:\n  uploadTimeout: -1s\n", "must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := configtest.Write(t, fmt.Sprintf("listen: 127.0.0.1:0\nstorage:\n  dir: %s\n%s", t.TempDir(), c.body))
			var stderr bytes.Buffer
			if code := run(context.Background(), []string{"serve", "--config", p}, io.Discard, &stderr); code != 2 {
				t.Fatalf("exit %d (%s)", code, stderr.String())
			}
			msg := strings.TrimRight(stderr.String(), "\n")
			if strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) || strings.Contains(msg, "hunter2") {
				t.Fatalf("want one line with %q, got %q", c.want, msg)
			}
		})
	}
}

// A cache rule may not capture a repository holding pushed content.
func TestServeRefusesRuleOverPushedRepo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startSecureServe(t, dir, "listen: %s\nstorage:\n  dir: %s\nlog:\n  level: warn\n")
	s.waitReady() // the store check is done: the API answers 503 until then
	d := digest.FromString("mine")
	resp, err := http.Post("http://"+s.addr+"/v2/team/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", strings.NewReader("mine"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	s.stop()
	p := configtest.Write(t, fmt.Sprintf("listen: 127.0.0.1:0\nstorage:\n  dir: %s\nrules:\n  - {name: team-rule, source: mcr.microsoft.com/team/*, target: team/*}\n", dir))
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--config", p}, io.Discard, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "TargetRepositoryPrefixMatchesExistingRegistries") {
		t.Fatalf("exit %d: %q", code, stderr.String())
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := runIO(context.Background(), []string{"hash-password"}, strings.NewReader("s3cret\n"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if err := bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out.String())), []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	if code := runIO(context.Background(), []string{"hash-password"}, strings.NewReader("\n"), &out, &errb); code != 2 {
		t.Fatalf("empty password: exit %d", code)
	}
}
