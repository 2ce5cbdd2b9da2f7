package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// The addresses and directory of `make run` (airlock lab's defaults).
const (
	labListen    = "127.0.0.1:5000"
	labMARListen = "127.0.0.1:6000"
	labDir       = "data"
)

const examplePath = "../../examples/airlock.yaml"

// examples/airlock.yaml says in its first line what it needs, validates,
// runs next to the lab (its emulator upstream, another port, its own
// state), and served as written (but for the ports and the directory)
// pulls through the emulator and is the data plane of a managed cluster.
func TestExampleConfigRunsAgainstLabEmulator(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	first, _, _ := strings.Cut(text, "\n")
	if !strings.HasPrefix(first, "# Needs") || !strings.Contains(first, labMARListen) {
		t.Fatalf("first line does not say what the example needs: %q", first)
	}
	cfg, err := config.Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == labListen {
		t.Errorf("listen %s is the lab's", cfg.Listen)
	}
	// Relative paths are taken from the file's directory: the example's
	// state is the repository root's data-example, next to the lab's data.
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "data-example"); cfg.Storage.Dir != want {
		t.Errorf("storage.dir %s, want %s", cfg.Storage.Dir, want)
	}
	if d, lab := cfg.Storage.Dir, filepath.Join(root, labDir); d == lab || strings.HasPrefix(d, lab+string(filepath.Separator)) {
		t.Errorf("storage.dir %s is (inside) the lab's ./%s", cfg.Storage.Dir, labDir)
	}
	rawDir := regexp.MustCompile(`(?m)^  dir: (\S+)`).FindStringSubmatch(text)
	if rawDir == nil {
		t.Fatal("the example has no storage.dir")
	}
	if len(cfg.Upstreams) != 1 || cfg.Upstreams[0].Host != deploy.MirroredHost || cfg.Upstreams[0].Endpoint != "http://"+labMARListen {
		t.Errorf("upstreams %+v: want mcr.microsoft.com at the lab's emulator", cfg.Upstreams)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := mar.New(mar.Config{Catalog: catalog.NameAKS, Seed: 1, CacheDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr := upstreamtest.Unreachable(t)
	for _, r := range []struct{ old, new string }{
		{"listen: " + cfg.Listen + "\n", "listen: " + addr + "\n"},
		{"endpoint: http://" + labMARListen + "\n", "endpoint: " + m.URL() + "\n"},
		{"dir: " + rawDir[1] + " ", "dir: " + t.TempDir() + " "},
	} {
		if strings.Count(text, r.old) != 1 {
			t.Fatalf("%q is not in the example once", r.old)
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	p := startProcReady(t, configtest.Write(t, text), addr)

	resp, err := http.Get(p.base + "/v2/aks-managed-repository/oss/kubernetes/pause/manifests/3.10?ns=mcr.microsoft.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	img, _ := m.Catalog().Image("oss/kubernetes/pause", "3.10")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != img.Digest.String() {
		t.Fatalf("pause:3.10 through the example: %s, digest %s, want %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), img.Digest)
	}

	// As its comment says: a managed cluster's registry is this process.
	out, err := exec.CommandContext(ctx, airlockBinary(t), "cluster", "create", "--name", "aks2", "--network-isolated", "--server", p.base).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster create: %v\n%s", err, out)
	}
	var c deploy.ClusterInfo
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r := c.BootstrapRegistry; r == nil || !r.Managed || !r.Served || r.Name != cfg.Control.RegistryName() || r.Endpoint != p.base {
		t.Fatalf("bootstrap registry %+v, want the served %s at %s", r, cfg.Control.RegistryName(), p.base)
	}
	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("serve exited %d\n%s", code, p.Stderr)
	}
}
