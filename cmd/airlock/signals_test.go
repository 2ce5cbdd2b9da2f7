package main

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
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
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// SIGTERM: airlock stops accepting at once, lets the response in flight
// (a blob still being filled) finish, exits 0, and the index was closed
// cleanly: after a restart the blob is a hit, with no upstream request.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 2<<20, 1)
	ld, resume := holdLayer(t, up, img, 1<<20)
	dir := t.TempDir()
	addr := upstreamtest.Unreachable(t)
	cfg := crashConfig(t, addr, dir, up.URL())
	p := startProcReady(t, cfg, addr)

	blob := "/v2/aks-managed-repository/oss/kubernetes/pause/blobs/" + ld.String()
	dl := startDownload(t, p.base+blob, 512<<10)
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
	dl.finish(t, "the in-flight response across the shutdown", ld.String())
	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stderr)
	}

	up.Reset()
	p = startProcReady(t, cfg, addr)
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
	ld, resume := holdLayer(t, a, imgA, 256<<10)

	dir := t.TempDir()
	addr := upstreamtest.Unreachable(t)
	cfgPath := crashConfig(t, addr, dir, a.URL())
	p := startProcReady(t, cfgPath, addr)
	pl := newPuller(p.base)
	if _, err := pl.get("/v2/aks-managed-repository/oss/kubernetes/pause/manifests/3.10", digest.Digest(da.String())); err != nil {
		t.Fatal(err)
	}
	// A download in flight across the reload.
	dl := startDownload(t, p.base+"/v2/aks-managed-repository/oss/kubernetes/pause/blobs/"+ld.String(), 128<<10)

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
	dl.finish(t, "the download across the reload", ld.String())

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

// holdLayer makes up hold its first GET of img's first layer after
// pauseAfter bytes, until resume is closed.
func holdLayer(t *testing.T, up *upstreamtest.Upstream, img v1.Image, pauseAfter int64) (layer v1.Hash, resume chan struct{}) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if layer, err = layers[0].Digest(); err != nil {
		t.Fatal(err)
	}
	resume = make(chan struct{})
	up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + layer.String(), PauseAfter: pauseAfter, Resume: resume, Times: 1})
	return layer, resume
}

// download is a GET whose first bytes were read while the rest is held
// (by an upstream fault), hashed as it goes.
type download struct {
	resp *http.Response
	h    hash.Hash
}

// startDownload sends GET url and reads its first n bytes; the body is
// closed when the test ends.
func startDownload(t *testing.T, url string, n int64) *download {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	d := &download{resp: resp, h: sha256.New()}
	if _, err := io.CopyN(d.h, resp.Body, n); err != nil {
		t.Fatal(err)
	}
	return d
}

// finish reads the rest of the body, which must be whole: not cut, and
// hashing to want.
func (d *download) finish(t *testing.T, what, want string) {
	t.Helper()
	if _, err := io.Copy(d.h, d.resp.Body); err != nil {
		t.Fatalf("%s was cut: %v", what, err)
	}
	if got := "sha256:" + hex.EncodeToString(d.h.Sum(nil)); got != want {
		t.Fatalf("%s: digest %s, want %s", what, got, want)
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
