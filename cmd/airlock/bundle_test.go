package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// serveForTest runs airlock serve in-process and waits until it is ready.
func serveForTest(t *testing.T, cfg string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, io.Discard, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	b, _ := os.ReadFile(cfg)
	addr := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "listen:"))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve never became ready: %s", stderr.String())
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// warm fills the cache through a running airlock (one platform of a
// multi-platform image), bundle export writes what it holds while the
// upstream is down, and bundle import seeds an air-gapped airlock from
// which every image pulls completely.
func TestWarmExportImportAirGap(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	pause := up.PushImage(t, "oss/kubernetes/pause:3.10", 50_000, 2)
	coredns := up.PushIndex(t, "oss/kubernetes/coredns:v1.11.3", 60_000)
	pd, _ := pause.Digest()
	cd, _ := coredns.Digest()
	im, _ := coredns.IndexManifest()
	var amd64, arm64 digest.Digest
	for _, m := range im.Manifests {
		if m.Platform.Architecture == "amd64" {
			amd64 = digest.Digest(m.Digest.String())
		} else {
			arm64 = digest.Digest(m.Digest.String())
		}
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "images.txt")
	writeFile(t, list, "# bootstrap images\nmcr.microsoft.com/oss/kubernetes/pause:3.10\n\nmcr.microsoft.com/oss/kubernetes/coredns:v1.11.3  # dns\n")

	// A connected site: warm, then export with the upstream down.
	addrA := upstreamtest.Unreachable(t)
	cfgA := crashConfig(t, addrA, filepath.Join(dir, "a"), up.URL())
	serveForTest(t, cfgA)
	code, out, errOut := runCmd(t, "warm", "--list", list, "--config", cfgA, "--platform", "linux/amd64", "--concurrency", "3")
	if code != 0 || !strings.Contains(out, "warmed 2/2 images: 5 blobs") {
		t.Fatalf("warm: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "ok   mcr.microsoft.com/oss/kubernetes/pause:3.10 "+pd.String()) {
		t.Fatalf("warm prints a line per image without a terminal:\n%s", errOut)
	}
	if n := up.Count("GET", "/manifests/"+arm64.String()); n != 0 {
		t.Fatalf("the arm64 manifest was fetched %d times; only linux/amd64 was asked for", n)
	}
	up.AddFault(upstreamtest.Fault{Status: 503})
	bundlePath := filepath.Join(dir, "bundle.tar")
	code, out, errOut = runCmd(t, "bundle", "export", "--list", list, "--config", cfgA, "--platform", "linux/amd64", "-o", bundlePath)
	if code != 0 || !strings.Contains(out, "exported 2 images") {
		t.Fatalf("export from the warm cache with the upstream down: exit %d\n%s%s", code, out, errOut)
	}
	idx := readBundleIndex(t, bundlePath)
	names := map[string]string{}
	for _, m := range idx.Manifests {
		names[m.Annotations[ocispec.AnnotationRefName]] = m.Digest.String()
	}
	if names["mcr.microsoft.com/oss/kubernetes/pause:3.10"] != pd.String() || names["mcr.microsoft.com/oss/kubernetes/coredns:v1.11.3"] != cd.String() {
		t.Fatalf("index.json names %v", names)
	}

	// An air-gapped site: nothing upstream at all.
	addrB := upstreamtest.Unreachable(t)
	cfgB := crashConfig(t, addrB, filepath.Join(dir, "b"), "http://"+upstreamtest.Unreachable(t))
	code, out, errOut = runCmd(t, "bundle", "import", "--config", cfgB, bundlePath)
	if code != 0 || !strings.Contains(out, "imported 2 images (2 cached under rules, 0 pushed)") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	serveForTest(t, cfgB)
	pl := newPuller("http://" + addrB)
	repo := "aks-managed-repository/oss/kubernetes/"
	if err := pl.pull(repo+"pause", "3.10", digest.Digest(pd.String())); err != nil {
		t.Fatalf("pause from the bundle: %v", err)
	}
	if _, err := pl.get("/v2/"+repo+"coredns/manifests/v1.11.3", digest.Digest(cd.String())); err != nil {
		t.Fatal(err)
	}
	if err := pl.pull(repo+"coredns", amd64.String(), amd64); err != nil {
		t.Fatalf("coredns linux/amd64 from the bundle: %v", err)
	}
	// The platform left out is a miss with no upstream: 5xx, never 404.
	resp, err := http.Get("http://" + addrB + "/v2/" + repo + "coredns/manifests/" + arm64.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Fatalf("a platform not in the bundle: %d, want 5xx", resp.StatusCode)
	}

	// As pushed: under the repository named without its host.
	cfgC := crashConfig(t, upstreamtest.Unreachable(t), filepath.Join(dir, "c"), "http://"+upstreamtest.Unreachable(t))
	code, out, errOut = runCmd(t, "bundle", "import", "--config", cfgC, "--as-pushed", bundlePath)
	if code != 0 || !strings.Contains(out, "imported 2 images (0 cached under rules, 2 pushed)") {
		t.Fatalf("import --as-pushed: exit %d\n%s%s", code, out, errOut)
	}
}

func readBundleIndex(t *testing.T, path string) ocispec.Index {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no index.json: %v", err)
		}
		if h.Name == "index.json" {
			var idx ocispec.Index
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				t.Fatal(err)
			}
			return idx
		}
	}
}

// A bundle with a flipped byte is refused and links nothing; warm reports
// an image it cannot pull and exits 1; a direct export needs no airlock.
func TestBundleRefusesCorruptAndWarmReportsFailures(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 40_000, 1)
	dir := t.TempDir()
	list := filepath.Join(dir, "direct.txt")
	host := strings.TrimPrefix(up.URL(), "http://")
	writeFile(t, list, host+"/oss/kubernetes/pause:3.10\n")
	bundlePath := filepath.Join(dir, "b.tar")
	code, out, errOut := runCmd(t, "bundle", "export", "--direct", "--list", list, "-o", bundlePath)
	if code != 0 {
		t.Fatalf("direct export: %d\n%s%s", code, out, errOut)
	}
	// Copy the bundle with a byte of the layer flipped.
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	bad := filepath.Join(dir, "bad.tar")
	corruptEntry(t, bundlePath, bad, "blobs/sha256/"+ld.Hex)
	cfg := crashConfig(t, upstreamtest.Unreachable(t), filepath.Join(dir, "s"), up.URL())
	code, _, errOut = runCmd(t, "bundle", "import", "--config", cfg, bad)
	if code != 1 || !strings.Contains(errOut, "does not verify") {
		t.Fatalf("corrupt bundle: exit %d: %s", code, errOut)
	}
	index, err := badgermeta.Open(filepath.Join(dir, "s", "meta"), zap.NewNop(), badgermeta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if repos, _, _ := index.Repos(context.Background(), "", 0); len(repos) != 0 {
		t.Fatalf("a refused bundle linked %v", repos)
	}
	index.Close()
	// The good one imports as pushed: no rule fetches from that host.
	code, out, errOut = runCmd(t, "bundle", "import", "--config", cfg, bundlePath)
	if code != 0 || !strings.Contains(out, "0 cached under rules, 1 pushed") {
		t.Fatalf("import: %d\n%s%s", code, out, errOut)
	}

	addr := upstreamtest.Unreachable(t)
	cfgA := crashConfig(t, addr, filepath.Join(dir, "a"), up.URL())
	serveForTest(t, cfgA)
	writeFile(t, list, "mcr.microsoft.com/oss/kubernetes/pause:3.10\nmcr.microsoft.com/oss/kubernetes/missing:1\nexample.com/no/rule:1\n")
	code, out, errOut = runCmd(t, "warm", "--list", list, "--server", "http://"+addr, "--config", cfgA)
	if code != 1 || !strings.Contains(out, "warmed 1/3 images") || !strings.Contains(out, "2 failed") {
		t.Fatalf("warm with failures: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"FAIL mcr.microsoft.com/oss/kubernetes/missing:1", "FAIL example.com/no/rule:1: no cache rule fetches example.com/no/rule"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "warm", "--cluster", "aks-1", "--config", cfgA); code != 2 || !strings.Contains(errOut, "cluster aks-1") {
		t.Errorf("--cluster of an unknown cluster: exit %d, want 2: %s", code, errOut)
	}
}

// corruptEntry copies the tarball src to dst with one byte of entry name
// flipped.
func corruptEntry(t *testing.T, src, dst, name string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == name {
			b[len(b)/2] ^= 0xff
			found = true
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	if !found {
		t.Fatalf("%s not in the bundle", name)
	}
	writeFile(t, dst, buf.String())
}
