package catalog

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy/aks"
	"github.com/airlock/airlock/internal/leaktest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func generate(t testing.TB, opts Options) *Catalog {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Generate(ctx, opts)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return c
}

// digests summarises every manifest and blob digest of a catalog.
func digests(c *Catalog) []string {
	var out []string
	for _, m := range c.Manifests() {
		out = append(out, "m "+m.Digest.String())
	}
	for _, b := range c.Blobs() {
		out = append(out, fmt.Sprintf("b %s %d", b.Digest, b.Size))
	}
	for _, i := range c.Images() {
		out = append(out, "t "+i.Ref().String()+" "+i.Digest.String())
	}
	return out
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	a := generate(t, Options{Seed: 1})
	b := generate(t, Options{Seed: 1})
	if !slices.Equal(digests(a), digests(b)) {
		t.Fatal("same seed, different digests")
	}
	c := generate(t, Options{Seed: 2})
	pa, _ := a.Image("oss/kubernetes/pause", "3.10")
	pc, _ := c.Image("oss/kubernetes/pause", "3.10")
	if pa.Digest == pc.Digest {
		t.Fatalf("seeds 1 and 2 give the same pause:3.10 digest %s", pa.Digest)
	}
	shared := 0
	bl := map[v1.Hash]bool{}
	for _, x := range a.Blobs() {
		bl[x.Digest] = true
	}
	for _, x := range c.Blobs() {
		if bl[x.Digest] && x.MediaType != types.OCIEmptyJSON && !strings.Contains(string(x.MediaType), "config") {
			shared++
		}
	}
	if shared > 0 {
		t.Fatalf("%d layer blobs identical across seeds", shared)
	}
}

func TestCacheReuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{Seed: 7, CacheDir: dir}
	a := generate(t, opts)
	// Damage one layer: it must be regenerated, identically.
	pause, _ := a.Image("oss/kubernetes/pause", "3.10")
	l := pause.Platforms[0].Layers[0]
	blob, _ := a.Blob("oss/kubernetes/pause", l.Digest)
	if err := os.Truncate(blob.Path(), 3); err != nil {
		t.Fatal(err)
	}
	b := generate(t, opts)
	if !slices.Equal(digests(a), digests(b)) {
		t.Fatal("regeneration changed digests")
	}
	if fi, err := os.Stat(blob.Path()); err != nil || fi.Size() != l.Size {
		t.Fatalf("damaged layer not regenerated: %v %v", fi, err)
	}
	if !strings.HasPrefix(opts.Dir(), dir) || !strings.Contains(opts.Dir(), "seed7") {
		t.Fatalf("Dir() = %s", opts.Dir())
	}
}

func TestBlobsMatchDigests(t *testing.T) {
	t.Parallel()
	c := generate(t, Options{Seed: 1})
	for _, b := range c.Blobs() {
		rc, err := b.Open()
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || d != b.Digest || n != b.Size {
			t.Errorf("blob %s: rehash %s size %d (want %d): %v", b.Digest, d, n, b.Size, err)
		}
	}
	for _, m := range c.Manifests() {
		if d, _, _ := v1.SHA256(bytes.NewReader(m.Raw)); d != m.Digest {
			t.Errorf("manifest %s hashes to %s", m.Digest, d)
		}
	}
}

// readLayer gunzips and untars a layer, returning the tar's sha256 and entries.
func readLayer(t *testing.T, b Blob) (v1.Hash, []string) {
	t.Helper()
	rc, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatalf("layer %s: %v", b.Digest, err)
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, h))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("layer %s: %v", b.Digest, err)
		}
		if !hdr.ModTime.Equal(layerMTime) || strings.HasPrefix(hdr.Name, "/") || strings.Contains(hdr.Name, "..") {
			t.Errorf("layer %s: bad header %+v", b.Digest, hdr)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir {
			t.Errorf("layer %s: entry %s has type %c", b.Digest, hdr.Name, hdr.Typeflag)
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil || n != hdr.Size {
			t.Fatalf("layer %s: entry %s: %d bytes, %v", b.Digest, hdr.Name, n, err)
		}
		names = append(names, hdr.Name)
	}
	io.Copy(io.Discard, zr) // tar padding after the end marker
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}, names
}

func TestManifestsAndLayers(t *testing.T) {
	t.Parallel()
	c := generate(t, Options{Seed: 1})
	checked := map[v1.Hash]bool{}
	for _, img := range c.Images() {
		for _, pm := range img.Platforms {
			m, err := c.Resolve(img.Repo, pm.Digest.String())
			if err != nil {
				t.Fatal(err)
			}
			mf, err := v1.ParseManifest(bytes.NewReader(m.Raw))
			if err != nil || mf.MediaType != m.MediaType {
				t.Fatalf("%s %s: %v (media type %s vs %s)", img.Ref(), pm.Digest, err, mf.MediaType, m.MediaType)
			}
			docker := m.MediaType == types.DockerManifestSchema2
			if docker != (img.MediaType == types.DockerManifestList) && img.MediaType.IsIndex() {
				t.Errorf("%s: child %s of %s", img.Ref(), m.MediaType, img.MediaType)
			}
			var cfg *v1.ConfigFile
			if img.ArtifactType == "" {
				cb, err := c.Blob(img.Repo, mf.Config.Digest)
				if err != nil {
					t.Fatal(err)
				}
				rc, _ := cb.Open()
				cfg, err = v1.ParseConfigFile(rc)
				rc.Close()
				if err != nil || len(cfg.RootFS.DiffIDs) != len(mf.Layers) || cfg.OS != pm.Platform.OS || cfg.Architecture != pm.Platform.Architecture {
					t.Fatalf("%s %s: config %+v: %v", img.Ref(), pm.Platform, cfg, err)
				}
			} else if mf.Config.MediaType != types.OCIEmptyJSON || mf.Config.Size != 2 || mf.ArtifactType != img.ArtifactType {
				t.Errorf("%s: artifact config %+v artifactType %q", img.Ref(), mf.Config, mf.ArtifactType)
			}
			for i, l := range mf.Layers {
				want := types.OCILayer
				if docker {
					want = types.DockerLayer
				}
				if l.MediaType != want {
					t.Errorf("%s: layer media type %s in %s", img.Ref(), l.MediaType, m.MediaType)
				}
				b, err := c.Blob(img.Repo, l.Digest)
				if err != nil || b.Size != l.Size {
					t.Fatalf("%s: layer %s: %v size %d/%d", img.Ref(), l.Digest, err, b.Size, l.Size)
				}
				if checked[l.Digest] && cfg == nil {
					continue
				}
				checked[l.Digest] = true
				diffID, names := readLayer(t, b)
				if len(names) == 0 {
					t.Errorf("layer %s is empty", l.Digest)
				}
				if cfg != nil && cfg.RootFS.DiffIDs[i] != diffID {
					t.Errorf("%s: diff_id[%d] = %s, tar hashes to %s", img.Ref(), i, cfg.RootFS.DiffIDs[i], diffID)
				}
			}
		}
	}
}

func TestCatalogShape(t *testing.T) {
	t.Parallel()
	c := generate(t, Options{Seed: 1})
	wantRepos := []string{
		"aks/packages/kubernetes/kubelet", "containernetworking/azure-cns", "containernetworking/cilium/cilium",
		"oss/binaries/kubernetes/azure-acr-credential-provider", "oss/binaries/kubernetes/kubernetes-node",
		"oss/kubernetes/azure-cloud-node-manager", "oss/kubernetes/coredns", "oss/kubernetes/kube-proxy", "oss/kubernetes/pause",
	}
	if got := c.Repos(); !slices.Equal(got, wantRepos) {
		t.Fatalf("repos = %v", got)
	}
	mediaTypes := map[types.MediaType]int{}
	repoOfBlob := map[v1.Hash]map[string]bool{}
	windows, maxLayers := 0, 0
	for _, img := range c.Images() {
		mediaTypes[img.MediaType]++
		for _, pm := range img.Platforms {
			if pm.Platform.OS == "windows" {
				windows++
			}
			maxLayers = max(maxLayers, len(pm.Layers))
			for _, l := range pm.Layers {
				if repoOfBlob[l.Digest] == nil {
					repoOfBlob[l.Digest] = map[string]bool{}
				}
				repoOfBlob[l.Digest][img.Repo+":"+img.Tag] = true
			}
		}
	}
	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList, types.OCIManifestSchema1} {
		if mediaTypes[mt] == 0 {
			t.Errorf("no tag with media type %s", mt)
		}
	}
	if windows == 0 || maxLayers < 3 {
		t.Errorf("windows platforms %d, max layers %d", windows, maxLayers)
	}
	// The linux/amd64 base layer is shared across repositories; the kube-proxy
	// iptables layer across tags of one repository.
	kp1, _ := c.Image("oss/kubernetes/kube-proxy", "v1.31.3")
	kp2, _ := c.Image("oss/kubernetes/kube-proxy", "v1.32.0")
	cd, _ := c.Image("oss/kubernetes/coredns", "v1.11.3-2")
	a1, _ := kp1.Platform("linux/amd64")
	a2, _ := kp2.Platform("linux/amd64")
	a3, _ := cd.Platform("linux/amd64")
	if a1.Layers[0].Digest != a3.Layers[0].Digest || a1.Layers[1].Digest != a2.Layers[1].Digest || a1.Layers[2].Digest == a2.Layers[2].Digest {
		t.Errorf("layer sharing wrong: %v / %v / %v", a1.Layers, a2.Layers, a3.Layers)
	}
	pause, ok := c.Image("oss/kubernetes/pause", "3.10")
	if !ok || len(pause.Platforms) != 3 {
		t.Fatalf("pause:3.10 = %+v", pause)
	}
	refs := c.Referrers("oss/kubernetes/pause", pause.Digest)
	var types []string
	for _, r := range refs {
		types = append(types, r.ArtifactType)
		m, err := c.Resolve("oss/kubernetes/pause", r.Digest.String())
		if err != nil || int64(len(m.Raw)) != r.Size {
			t.Fatalf("referrer %s: %v", r.Digest, err)
		}
		mf, _ := v1.ParseManifest(bytes.NewReader(m.Raw))
		if mf.Subject == nil || mf.Subject.Digest != pause.Digest {
			t.Errorf("referrer %s subject %v", r.Digest, mf.Subject)
		}
	}
	slices.Sort(types)
	if !slices.Equal(types, []string{ArtifactTypeSPDX, ArtifactTypeNotarySignature}) {
		t.Errorf("pause referrers = %v", types)
	}
	if got := c.Referrers("oss/kubernetes/pause", pause.Platforms[0].Digest); len(got) != 0 {
		t.Errorf("unexpected referrers %v", got)
	}
}

// The emulator serves everything a node of every supported version asks
// for at bootstrap (the control module's table), for linux/amd64.
func TestCatalogServesEveryBootstrapSet(t *testing.T) {
	t.Parallel()
	c := generate(t, Options{Seed: 1})
	for _, rel := range aks.Releases() {
		kinds := map[string]bool{}
		for _, r := range rel.Bootstrap() {
			img, ok := c.Image(r.Repo, r.Tag)
			if !ok {
				t.Errorf("%s: %s not in catalog", rel.Minor, r)
				continue
			}
			kinds[img.ArtifactType] = true
			if _, ok := img.Platform("linux/amd64"); !ok {
				t.Errorf("%s: %s has no linux/amd64 manifest", rel.Minor, r)
			}
		}
		if !kinds[ArtifactTypeKubeletPackage] || !kinds[ArtifactTypeBinaryPackage] || !kinds[""] {
			t.Errorf("%s: bootstrap set of kinds %v", rel.Minor, kinds)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	t.Parallel()
	c := generate(t, Options{Seed: 1})
	for _, tc := range []struct {
		repo, ref string
		want      error
	}{
		{"nope/nope", "latest", ErrNameUnknown},
		{"oss/kubernetes/pause", "0.0", ErrManifestUnknown},
		{"oss/kubernetes/pause", "sha256:" + strings.Repeat("0", 64), ErrManifestUnknown},
	} {
		if _, err := c.Resolve(tc.repo, tc.ref); !errors.Is(err, tc.want) {
			t.Errorf("Resolve(%s, %s) = %v, want %v", tc.repo, tc.ref, err, tc.want)
		}
	}
	// A blob exists only in the repositories that reference it.
	kp, _ := c.Image("oss/kubernetes/kube-proxy", "v1.31.3")
	if _, err := c.Blob("oss/kubernetes/pause", kp.Platforms[0].Layers[2].Digest); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("cross-repo blob: %v", err)
	}
}

func TestExtra(t *testing.T) {
	t.Parallel()
	e, err := ParseExtra("test/large:v1=1MiB,4KiB")
	if err != nil || e.Repo != "test/large" || e.Tag != "v1" || !slices.Equal(e.LayerSizes, []int64{1 << 20, 4 << 10}) {
		t.Fatalf("ParseExtra = %+v, %v", e, err)
	}
	for _, bad := range []string{"x", "x:=1", "x:y=", "x:y=0", "x:y=1,zz", ":y=1"} {
		if _, err := ParseExtra(bad); err == nil {
			t.Errorf("ParseExtra(%q) succeeded", bad)
		}
	}
	c := generate(t, Options{Name: NameNone, Extra: []Extra{e}})
	img, ok := c.Image("test/large", "v1")
	if !ok || len(c.Repos()) != 1 || len(img.Platforms[0].Layers) != 2 {
		t.Fatalf("extra image %+v", img)
	}
	if s := img.Platforms[0].Layers[0].Size; s < 1<<20 || s > 1<<20+8<<10 {
		t.Errorf("1 MiB incompressible layer is %d bytes", s)
	}
}

func TestContentIndependentOfChunking(t *testing.T) {
	t.Parallel()
	seed := contentSeed(1, "l", "f")
	var a, b bytes.Buffer
	io.Copy(&a, newContent(seed, 100_000, false))
	r := newContent(seed, 100_000, false)
	buf := make([]byte, 777)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || a.Len() != 100_000 {
		t.Fatal("content depends on read sizes")
	}
}

func TestOptionsErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Name: "eks"}, {Scale: "huge"}} {
		if _, err := Generate(context.Background(), Options{Name: o.Name, Scale: o.Scale, CacheDir: t.TempDir()}); err == nil {
			t.Errorf("Generate(%+v) succeeded", o)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Generate(ctx, Options{CacheDir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Generate: %v", err)
	}
}

// BenchmarkGenerateFull measures a cold --scale full generation:
// go test -run '^$' -bench GenerateFull -benchtime 1x ./upstream/mar/catalog/
func BenchmarkGenerateFull(b *testing.B) {
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "cache")
		start := time.Now()
		c := generate(b, Options{Scale: ScaleFull, Seed: 1, CacheDir: dir})
		b.ReportMetric(float64(c.TotalBlobSize())/(1<<20), "MiB")
		b.ReportMetric(time.Since(start).Seconds(), "s/gen")
	}
}
