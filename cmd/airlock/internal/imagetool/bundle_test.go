package imagetool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// contentsRE is what a bundle holds, as export and import both say it.
var contentsRE = regexp.MustCompile(`\d+ manifests, \d+ blobs \([^)]+\)`)

// warm fills the cache through a running airlock (one platform of a
// multi-platform image), bundle export writes what it holds while the
// upstream is down, and bundle import seeds an air-gapped airlock from
// which every image pulls completely; export and import count the bundle
// the same way.
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

	// A connected site: warm, then export with the upstream down. The
	// configuration's listen address is where warm finds the server.
	cfgA := writeConfig(t, upstreamtest.Unreachable(t), filepath.Join(dir, "a"), up.URL())
	serve(t, cfgA)
	r := runWarm(t, SourceOptions{Config: cfgA, Platform: "linux/amd64", Concurrency: 3}, list, "", "")
	if r.err != nil || !strings.Contains(r.out, "warmed 2/2 images: 5 blobs") {
		t.Fatalf("warm: %s", r)
	}
	if !strings.Contains(r.errOut, "ok   mcr.microsoft.com/oss/kubernetes/pause:3.10 "+pd.String()) {
		t.Fatalf("warm prints a line per image without a terminal:\n%s", r.errOut)
	}
	if n := up.Count("GET", "/manifests/"+arm64.String()); n != 0 {
		t.Fatalf("the arm64 manifest was fetched %d times; only linux/amd64 was asked for", n)
	}
	up.AddFault(upstreamtest.Fault{Status: 503})
	bundlePath := filepath.Join(dir, "bundle.tar")
	r = runExport(t, SourceOptions{Config: cfgA, Platform: "linux/amd64"}, list, bundlePath)
	// pause: 1 manifest, 2 layers and a config; coredns: the index, the
	// amd64 manifest, its layer and config.
	if r.err != nil || !strings.Contains(r.out, "exported 2 images: 3 manifests, 5 blobs (") {
		t.Fatalf("export from the warm cache with the upstream down: %s", r)
	}
	exported := contentsRE.FindString(r.out)
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
	cfgB := writeConfig(t, addrB, filepath.Join(dir, "b"), "http://"+upstreamtest.Unreachable(t))
	r = importBundleFile(t, cfgB, bundlePath, false)
	if r.err != nil || !strings.Contains(r.out, "imported 2 images (2 cached under rules, 0 pushed): ") {
		t.Fatalf("import: %s", r)
	}
	if imported := contentsRE.FindString(r.out); imported != exported || exported == "" {
		t.Fatalf("export says %q, import of the same bundle %q", exported, imported)
	}
	serve(t, cfgB)
	repo := addrB + "/aks-managed-repository/oss/kubernetes/"
	if err := pull(repo + "pause:3.10"); err != nil {
		t.Fatalf("pause from the bundle: %v", err)
	}
	if err := pull(repo + "coredns@" + amd64.String()); err != nil {
		t.Fatalf("coredns linux/amd64 from the bundle: %v", err)
	}
	// The platform left out is a miss with no upstream: 5xx, never 404.
	resp, err := http.Get("http://" + addrB + "/v2/aks-managed-repository/oss/kubernetes/coredns/manifests/" + arm64.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Fatalf("a platform not in the bundle: %d, want 5xx", resp.StatusCode)
	}

	// As pushed: under the repository named without its host.
	cfgC := writeConfig(t, upstreamtest.Unreachable(t), filepath.Join(dir, "c"), "http://"+upstreamtest.Unreachable(t))
	if r = importBundleFile(t, cfgC, bundlePath, true); r.err != nil || !strings.Contains(r.out, "imported 2 images (0 cached under rules, 2 pushed)") {
		t.Fatalf("import --as-pushed: %s", r)
	}
}

// A second warm of the same list finds everything cached: its summary says
// so, and nothing reaches the upstream.
func TestWarmSummarySplitsCachedAndFetched(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	up.PushImage(t, "oss/kubernetes/pause:3.10", 40_000, 2)
	up.PushImage(t, "oss/kubernetes/coredns:v1.11.3", 30_000, 1)
	dir := t.TempDir()
	list := filepath.Join(dir, "images.txt")
	writeFile(t, list, "mcr.microsoft.com/oss/kubernetes/pause:3.10\nmcr.microsoft.com/oss/kubernetes/coredns:v1.11.3\n")
	cfg := writeConfig(t, "127.0.0.1:0", filepath.Join(dir, "s"), up.URL())
	srv := serve(t, cfg)
	so := SourceOptions{Config: cfg, Server: srv.URL()}

	first := runWarm(t, so, list, "", "")
	if first.err != nil || !strings.Contains(first.out, "warmed 2/2 images: 5 blobs") ||
		!strings.Contains(first.out, "already cached: 0 blobs (0 B); fetched from upstream: 5 blobs (") ||
		!strings.HasSuffix(first.out, "), 2 manifests\n") {
		t.Fatalf("first warm: %s", first)
	}
	fetched := regexp.MustCompile(`fetched from upstream: 5 blobs \(([^)]+)\)`).FindStringSubmatch(first.out)[1]
	gets := up.Count("GET", "")

	second := runWarm(t, so, list, "", "")
	if second.err != nil || !strings.Contains(second.out, "warmed 2/2 images: 5 blobs") ||
		!strings.Contains(second.out, "already cached: 5 blobs ("+fetched+"); fetched from upstream: 0 blobs (0 B), 0 manifests") {
		t.Fatalf("second warm (first fetched %s): %s", fetched, second)
	}
	if n := up.Count("GET", ""); n != gets {
		t.Fatalf("the second warm sent %d GETs upstream", n-gets)
	}
}

// bundle export --direct goes where the configuration's upstreams send a
// registry host (here the MAR emulator), never to the host itself.
func TestExportDirectHonoursEndpointOverrides(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := mar.New(mar.Config{Catalog: catalog.NameNone, CacheDir: t.TempDir(), Seed: 3,
		Extra: []catalog.Extra{{Repo: "oss/test/app", Tag: "v1", LayerSizes: []int64{20_000, 10_000}}}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	dir := t.TempDir()
	list := filepath.Join(dir, "images.txt")
	writeFile(t, list, "mcr.microsoft.com/oss/test/app:v1\n")
	cfg := writeConfig(t, "127.0.0.1:0", filepath.Join(dir, "s"), m.URL())
	out := filepath.Join(dir, "direct.tar")

	r := runExport(t, SourceOptions{Config: cfg, Direct: true}, list, out)
	if r.err != nil || !strings.Contains(r.out, "exported 1 images: 1 manifests, 3 blobs (") {
		t.Fatalf("export --direct: %s", r)
	}
	img, ok := m.Catalog().Image("oss/test/app", "v1")
	if !ok {
		t.Fatal("no image in the emulator")
	}
	st, err := mar.FetchStats(ctx, m.URL())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range img.Platforms {
		for _, l := range p.Layers {
			if n := st.Fetches(l.Digest.String()); n != 1 {
				t.Errorf("layer %s fetched %d times from the emulator, want 1", l.Digest, n)
			}
		}
	}
	idx := readBundleIndex(t, out)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "mcr.microsoft.com/oss/test/app:v1" ||
		idx.Manifests[0].Digest.String() != img.Digest.String() {
		t.Fatalf("the bundle names the reference as listed: %+v", idx.Manifests)
	}
}

// A bundle with a flipped byte is refused and links nothing; a direct
// export needs no airlock; warm reports an image it cannot pull once and
// fails; an address with no airlock is one error.
func TestBundleRefusesCorruptAndWarmReportsFailures(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	img := up.PushImage(t, "oss/kubernetes/pause:3.10", 40_000, 1)
	dir := t.TempDir()
	list := filepath.Join(dir, "direct.txt")
	host := strings.TrimPrefix(up.URL(), "http://")
	writeFile(t, list, host+"/oss/kubernetes/pause:3.10\n")
	bundlePath := filepath.Join(dir, "b.tar")
	if r := runExport(t, SourceOptions{Direct: true}, list, bundlePath); r.err != nil {
		t.Fatalf("direct export: %s", r)
	}
	// Copy the bundle with a byte of the layer flipped.
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	bad := filepath.Join(dir, "bad.tar")
	corruptEntry(t, bundlePath, bad, "blobs/sha256/"+ld.Hex)
	cfg := writeConfig(t, upstreamtest.Unreachable(t), filepath.Join(dir, "s"), up.URL())
	if r := importBundleFile(t, cfg, bad, false); r.err == nil || !strings.Contains(r.err.Error(), "does not verify") {
		t.Fatalf("corrupt bundle: %s", r)
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
	if r := importBundleFile(t, cfg, bundlePath, false); r.err != nil || !strings.Contains(r.out, "0 cached under rules, 1 pushed") {
		t.Fatalf("import: %s", r)
	}

	cfgA := writeConfig(t, upstreamtest.Unreachable(t), filepath.Join(dir, "a"), up.URL())
	srv := serve(t, cfgA)
	writeFile(t, list, "mcr.microsoft.com/oss/kubernetes/pause:3.10\nmcr.microsoft.com/oss/kubernetes/missing:1\nexample.com/no/rule:1\n")
	r := runWarm(t, SourceOptions{Config: cfgA, Server: srv.URL()}, list, "", "")
	if r.err == nil || r.err.Error() != "2 of 3 images failed (FAIL lines above)" || !strings.Contains(r.out, "warmed 1/3 images") || !strings.HasSuffix(r.out, "; 2 failed\n") {
		t.Fatalf("warm with failures: %s", r)
	}
	for _, want := range []string{"FAIL mcr.microsoft.com/oss/kubernetes/missing:1", "FAIL example.com/no/rule:1: no cache rule fetches example.com/no/rule"} {
		if strings.Count(r.errOut, want) != 1 {
			t.Errorf("stderr has %q not exactly once:\n%s", want, r.errOut)
		}
	}
	// Export fails the same images once each, and writes nothing.
	out := filepath.Join(dir, "partial.tar")
	r = runExport(t, SourceOptions{Config: cfgA, Server: srv.URL()}, list, out)
	if r.err == nil || r.err.Error() != "2 of 3 images could not be resolved (FAIL lines above); no bundle written" ||
		strings.Count(r.errOut, "FAIL example.com/no/rule:1") != 1 || fileExists(out) {
		t.Fatalf("export with failures: %s", r)
	}

	var ue *UsageError
	if r := runWarm(t, SourceOptions{Server: srv.URL()}, "", "aks-1", ""); !errors.As(r.err, &ue) || !strings.Contains(r.err.Error(), "cluster aks-1") {
		t.Errorf("--cluster of an unknown cluster is a usage error: %s", r)
	}
	down := "http://" + upstreamtest.Unreachable(t)
	if r := runWarm(t, SourceOptions{Server: down}, list, "", ""); r.err == nil || errors.As(r.err, &ue) ||
		!strings.HasPrefix(r.err.Error(), "cannot reach airlock at "+down) || r.errOut != "" || r.out != "" {
		t.Errorf("no airlock at --server: %s", r)
	}
}

// A bundle imported into a shared store (storage.driver: azure) is served
// by a replica on it with no upstream at all.
func TestImportIntoSharedStore(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	up.PushImage(t, "oss/kubernetes/pause:3.10", 30_000, 1)
	dir := t.TempDir()
	list := filepath.Join(dir, "images.txt")
	writeFile(t, list, "mcr.microsoft.com/oss/kubernetes/pause:3.10\n")
	bundlePath := filepath.Join(dir, "bundle.tar")
	if r := runExport(t, SourceOptions{Direct: true, Config: writeConfig(t, "127.0.0.1:0", filepath.Join(dir, "a"), up.URL()), Platform: "linux/amd64"}, list, bundlePath); r.err != nil {
		t.Fatalf("export: %s", r)
	}
	az := azuritetest.Start(t)
	addr := upstreamtest.Unreachable(t)
	cfg := writeConfig(t, addr, filepath.Join(dir, "spool"), "http://"+upstreamtest.Unreachable(t))
	raw, _ := os.ReadFile(cfg)
	writeFile(t, cfg, strings.Replace(string(raw), "  dir: "+filepath.Join(dir, "spool")+"\n", fmt.Sprintf(
		"  dir: %s\n  driver: azure\n  azure:\n    serviceURL: %s\n    accountName: %s\n    accountKey: %s\n",
		filepath.Join(dir, "spool"), az.ServiceURL, az.AccountName, az.AccountKey), 1))
	if r := importBundleFile(t, cfg, bundlePath, false); r.err != nil || !strings.Contains(r.out, "imported 1 images (1 cached under rules, 0 pushed)") {
		t.Fatalf("import into the shared store: %s", r)
	}
	serve(t, cfg)
	if err := pull(addr + "/aks-managed-repository/oss/kubernetes/pause:3.10"); err != nil {
		t.Fatalf("pause from the shared store: %v", err)
	}
}

// bundle export --direct asks an upstream with the credential set of the
// cache rule that covers the reference, as airlock serve would; with a
// wrong password the image's FAIL line names the refusal and no bundle is
// written.
func TestExportDirectUsesRuleCredentials(t *testing.T) {
	t.Parallel()
	up := upstreamtest.NewAuthRedirect(t, "puller", "s3cret")
	up.Up.PushImage(t, "oss/test/app:v1", 2048, 2)
	dir := t.TempDir()
	list := filepath.Join(dir, "images.txt")
	writeFile(t, list, "mcr.microsoft.com/oss/test/app:v1\n")
	export := func(password string) (cli, string) {
		rule := `rules:
  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*, credentialSet: mcr-creds}
credentialSets:
  - {name: mcr-creds, username: puller, password: ` + password + `}
`
		cfg := configtest.Write(t, configtest.Serve("127.0.0.1:0", filepath.Join(dir, "s"), up.API.URL, rule))
		out := filepath.Join(t.TempDir(), "direct.tar")
		return runExport(t, SourceOptions{Config: cfg, Direct: true}, list, out), out
	}
	if r, out := export("s3cret"); r.err != nil || !strings.Contains(r.out, "exported 1 images: 1 manifests, 3 blobs (") || !fileExists(out) {
		t.Fatalf("export --direct with the rule's credential set: %s", r)
	}
	if up.Tokens.Load() == 0 {
		t.Fatal("the upstream handed out no token: the export did not log in")
	}
	r, out := export("wrong")
	if r.err == nil || fileExists(out) {
		t.Fatalf("export --direct with a wrong password: %s (bundle written: %v)", r, fileExists(out))
	}
	if !strings.Contains(r.errOut, "FAIL mcr.microsoft.com/oss/test/app:v1: ") || !strings.Contains(r.errOut, "UNAUTHORIZED") {
		t.Fatalf("export --direct with a wrong password: want the image's FAIL line naming the refusal: %s", r)
	}
}
