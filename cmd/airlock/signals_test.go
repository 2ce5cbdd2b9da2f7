package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// SIGTERM: airlock stops accepting at once, lets the response in flight
// (a blob still being filled) finish, exits 0, and the index was closed
// cleanly: after a restart the blob is a hit, with no upstream request.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 2<<20, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	resume := make(chan struct{})
	up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + ld.String(), PauseAfter: 1 << 20, Resume: resume, Times: 1})
	dir := t.TempDir()
	addr := upstreamtest.Unreachable(t)
	cfg := crashConfig(t, addr, dir, up.URL())
	p := startProc(t, cfg, addr)
	p.waitReady()

	blob := "/v2/aks-managed-repository/oss/kubernetes/pause/blobs/" + ld.String()
	resp, err := http.Get(p.base + blob)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 512<<10); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGTERM)
	// The listener closes at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.Exited():
		t.Fatal("exited with a response in flight")
	default:
	}
	close(resume)
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("in-flight response cut by the shutdown: %v", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != ld.String() {
		t.Fatalf("in-flight response digest %s", got)
	}
	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stderr)
	}

	up.Reset()
	p = startProc(t, cfg, addr)
	p.waitReady()
	if _, err := newPuller(p.base).get(blob, digest.Digest(ld.String())); err != nil {
		t.Fatal(err)
	}
	if n := up.Total(); n != 0 {
		t.Fatalf("the blob filled before the shutdown is not a hit after restart: %d upstream requests", n)
	}
	p.stop(30 * time.Second)
}

// SIGHUP reloads rules and upstream endpoints without dropping a
// connection; a bad file is logged and ignored, the running configuration
// stays.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	a, b := upstreamtest.New(t), upstreamtest.New(t)
	imgA := a.PushImage(t, "oss/kubernetes/pause:3.10", 1<<20, 1)
	imgB := b.PushImage(t, "oss/kubernetes/pause:3.10", 1000, 1)
	da, _ := imgA.Digest()
	db, _ := imgB.Digest()
	layers, _ := imgA.Layers()
	ld, _ := layers[0].Digest()
	resume := make(chan struct{})
	a.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + ld.String(), PauseAfter: 256 << 10, Resume: resume, Times: 1})

	dir := t.TempDir()
	addr := upstreamtest.Unreachable(t)
	cfgPath := crashConfig(t, addr, dir, a.URL())
	p := startProc(t, cfgPath, addr)
	p.waitReady()
	pl := newPuller(p.base)
	if _, err := pl.get("/v2/aks-managed-repository/oss/kubernetes/pause/manifests/3.10", digest.Digest(da.String())); err != nil {
		t.Fatal(err)
	}
	// A download in flight across the reload.
	resp, err := http.Get(p.base + "/v2/aks-managed-repository/oss/kubernetes/pause/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 128<<10); err != nil {
		t.Fatal(err)
	}

	// New endpoint (b), a new static rule, and a setting that needs a restart.
	next := strings.Replace(mustRead(t, cfgPath), a.URL(), b.URL(), 1)
	next = strings.Replace(next, "stallTimeout: 5s", "stallTimeout: 6s", 1)
	next = strings.Replace(next, "rules:\n", "rules:\n  - {name: pause-mirror, source: mcr.microsoft.com/oss/kubernetes/pause, target: mirror/pause}\n", 1)
	writeFile(t, cfgPath, next)
	p.Signal(syscall.SIGHUP)
	polltest.Until(t, 15*time.Second, "the new rule and endpoint", func() bool {
		_, err := pl.get("/v2/mirror/pause/manifests/3.10", digest.Digest(db.String()))
		return err == nil
	})
	close(resume)
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("download cut by the reload: %v", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != ld.String() {
		t.Fatalf("download across the reload: digest %s", got)
	}

	// A bad file changes nothing.
	writeFile(t, cfgPath, strings.Replace(next, "rules:\n", "rules:\n  - {name: all-mcr, source: mcr.microsoft.com/*, target: \"*\"}\n", 1))
	p.Signal(syscall.SIGHUP)
	polltest.Until(t, 15*time.Second, "the refusal in the log", func() bool {
		return strings.Contains(p.Stderr.String(), "configuration reload refused")
	})
	if _, err := pl.get("/v2/mirror/pause/manifests/3.10", digest.Digest(db.String())); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	}
	if !strings.Contains(p.Stderr.String(), `"unchanged_until_restart":["cache"]`) {
		t.Errorf("a reload must name the settings that need a restart:\n%s", p.Stderr)
	}
	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
