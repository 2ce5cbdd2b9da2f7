package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

// clientStack is what a client tool's test runs against: the emulator and
// airlock (with the aks-managed-mcr rule) on loopback ports.
type clientStack struct {
	m    *marServer
	imgs map[string]catalog.Image // the emulator's, by reference
	repo string                   // airlock's host/aks-managed-repository/
}

func startClientStack(t *testing.T, ctx context.Context) clientStack {
	t.Helper()
	m := startMar(t, "", "127.0.0.1:0", "127.0.0.1:0")
	a := startAirlock(t, "", "127.0.0.1:0", m.url, ruleYAML)
	return clientStack{m: m, imgs: m.images(t, ctx), repo: a.host + "/" + mirrorRepo + "/"}
}

// skopeo copies every platform of two multi-arch images through airlock,
// with --preserve-digests: an OCI index (pause) into an OCI layout and a
// Docker manifest list (kube-proxy) into a dir: copy (an OCI layout would
// need a conversion, which changes digests). Every digest is the
// emulator's, every file hashes to its name, and each blob went upstream
// once.
func TestSkopeoCopyAll(t *testing.T) {
	t.Parallel()
	skopeo := needTool(t, "skopeo")
	ctx := testContext(t, 2*time.Minute)
	s := startClientStack(t, ctx)
	m, imgs, src := s.m, s.imgs, "docker://"+s.repo
	copyAll := func(ref, dst string) {
		mustRun(t, ctx, time.Minute, skopeo, "--insecure-policy", "copy", "--all", "--preserve-digests",
			"--src-tls-verify=false", src+ref, dst)
	}

	pause := mustImage(t, imgs, "oss/kubernetes/pause:3.10")
	oci := filepath.Join(t.TempDir(), "pause")
	copyAll(pause.Ref().String(), "oci:"+oci+":3.10")
	top, blobs := readLayout(t, oci)
	if top != pause.Digest.String() {
		t.Errorf("oci layout index.json names %s, the emulator serves %s", top, pause.Digest)
	}
	if err := sameSet(blobs, allDigests(pause)); err != nil {
		t.Errorf("oci layout of %s (%d platforms): %v", pause.Ref(), len(pause.Platforms), err)
	}

	proxy := mustImage(t, imgs, "oss/kubernetes/kube-proxy:v1.31.3")
	dir := filepath.Join(t.TempDir(), "kube-proxy")
	copyAll(proxy.Ref().String(), "dir:"+dir)
	if d := fileDigest(t, filepath.Join(dir, "manifest.json")); d != proxy.Digest.String() {
		t.Errorf("dir: manifest list %s, the emulator serves %s", d, proxy.Digest)
	}
	got := hashedFiles(t, dir, "")
	for d := range hashedFiles(t, dir, ".manifest.json") {
		got[d] = true
	}
	got[proxy.Digest.String()] = true
	if err := sameSet(got, allDigests(proxy)); err != nil {
		t.Errorf("dir: copy of %s: %v", proxy.Ref(), err)
	}

	st := m.stats(t, ctx)
	for _, img := range []catalog.Image{pause, proxy} {
		for _, pm := range img.Platforms {
			_, bs := platformBlobs(t, img, pm.Platform.OS+"/"+pm.Platform.Architecture)
			for _, d := range bs {
				if n := st.Fetches(d.String()); n != 1 {
					t.Errorf("%s %s: blob %s fetched upstream %d times, want 1", img.Ref(), pm.Platform.Architecture, d, n)
				}
			}
		}
	}
	t.Logf("skopeo copied %s (%d platforms) and %s (%d platforms) with the emulator's digests", pause.Ref(), len(pause.Platforms), proxy.Ref(), len(proxy.Platforms))
}

// crane reads through airlock: manifest and digest byte-identical to the
// emulator's, pull of all platforms into an OCI layout and of one into a
// tarball with the emulator's digests, and ls listing the emulator's tags
// through the rule (SPEC §3), before and after pulling.
func TestCrane(t *testing.T) {
	t.Parallel()
	crane := needTool(t, "crane")
	ctx := testContext(t, 2*time.Minute)
	s := startClientStack(t, ctx)
	imgs, repo := s.imgs, s.repo
	run := func(args ...string) string {
		return mustRun(t, ctx, time.Minute, append([]string{crane, "--insecure"}, args...)...)
	}

	coredns := mustImage(t, imgs, "oss/kubernetes/coredns:v1.11.3-5")
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(manifest, []byte(run("manifest", repo+coredns.Ref().String())), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := fileDigest(t, manifest); d != coredns.Digest.String() {
		t.Errorf("crane manifest %s hashes to %s, the emulator serves %s", coredns.Ref(), d, coredns.Digest)
	}
	if d := strings.TrimSpace(run("digest", repo+coredns.Ref().String())); d != coredns.Digest.String() {
		t.Errorf("crane digest %s = %s, want %s", coredns.Ref(), d, coredns.Digest)
	}
	oci := filepath.Join(t.TempDir(), "coredns")
	run("pull", "--format", "oci", "--platform", "all", repo+coredns.Ref().String(), oci)
	top, blobs := readLayout(t, oci)
	if err := sameSet(blobs, allDigests(coredns)); top != coredns.Digest.String() || err != nil {
		t.Errorf("crane pull --format oci of %s: index %s (want %s): %v", coredns.Ref(), top, coredns.Digest, err)
	}

	proxy := mustImage(t, imgs, "oss/kubernetes/kube-proxy:v1.30.7")
	tb := filepath.Join(t.TempDir(), "kube-proxy.tar")
	run("pull", "--platform", "linux/amd64", repo+proxy.Ref().String(), tb)
	img, err := tarball.ImageFromPath(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	_, want := platformBlobs(t, proxy, "linux/amd64")
	got := []string{cfg.String()}
	for _, l := range mf.Layers {
		got = append(got, l.Digest.String())
	}
	if strings.Join(got, " ") != strings.Join(digestStrings(want), " ") {
		t.Errorf("crane pull %s tarball: config and layers %v, the emulator serves %v", proxy.Ref(), got, want)
	}

	// The emulator's tags are listed, whether or not airlock holds them.
	for _, r := range []string{"oss/kubernetes/coredns", "oss/kubernetes/kube-proxy", "oss/kubernetes/pause"} {
		want := tagsOf(imgs, r)
		if tags := strings.Fields(run("ls", repo+r)); !slices.Equal(tags, want) || len(want) < 2 {
			t.Errorf("crane ls %s: %v, the emulator has %v", r, tags, want)
		}
	}
}

// oras pulls the kubelet package (an OCI index of artifacts) and a binary
// package through airlock, files named by their title with the emulator's
// digests, and discovers the referrers of pause:3.10 — the notary signature
// and the SBOM the emulator holds — unfiltered and by artifactType.
func TestOras(t *testing.T) {
	t.Parallel()
	oras := needTool(t, "oras")
	ctx := testContext(t, 2*time.Minute)
	s := startClientStack(t, ctx)
	m, imgs, repo := s.m, s.imgs, s.repo
	run := func(args ...string) string {
		return mustRun(t, ctx, time.Minute, append([]string{oras}, append(args, "--plain-http")...)...)
	}

	for _, ref := range []string{"aks/packages/kubernetes/kubelet:v1.31.3", "oss/binaries/kubernetes/kubernetes-node:v1.31.3-linux-amd64"} {
		img := mustImage(t, imgs, ref)
		out := t.TempDir()
		args := []string{"pull", "-o", out, repo + ref}
		if img.MediaType.IsIndex() { // oras refuses --platform on a single artifact
			args = append(args, "--platform", "linux/amd64")
		}
		run(args...)
		pm, ok := img.Platform("linux/amd64")
		if !ok || len(pm.Layers) == 0 {
			t.Fatalf("%s: no linux/amd64 files in the emulator's catalog", ref)
		}
		for _, l := range pm.Layers {
			title := l.Annotations["org.opencontainers.image.title"]
			if title == "" {
				t.Fatalf("%s: layer %s has no title", ref, l.Digest)
			}
			if d := fileDigest(t, filepath.Join(out, title)); d != l.Digest.String() {
				t.Errorf("oras pull %s: %s is %s, want %s", ref, title, d, l.Digest)
			}
		}
		t.Logf("oras pull %s (artifactType %s): %d files", ref, img.ArtifactType, len(pm.Layers))
	}

	pause := mustImage(t, imgs, "oss/kubernetes/pause:3.10")
	want := marReferrers(t, ctx, m, pause.Repo, pause.Digest.String())
	types := map[string]string{}
	for _, r := range want {
		types[r.Digest.String()] = r.ArtifactType
	}
	if at := slices.Collect(maps.Values(types)); len(types) != 2 || !slices.Contains(at, catalog.ArtifactTypeNotarySignature) || !slices.Contains(at, catalog.ArtifactTypeSPDX) {
		t.Fatalf("the emulator's referrers of %s are not a signature and an SBOM: %v", pause.Ref(), types)
	}
	discover := func(args ...string) map[string]string {
		var res struct {
			Digest    string `json:"digest"`
			Referrers []struct {
				Digest       string `json:"digest"`
				ArtifactType string `json:"artifactType"`
			} `json:"referrers"`
		}
		out := run(append([]string{"discover", "--format", "json", repo + pause.Ref().String()}, args...)...)
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("oras discover: %v\n%s", err, out)
		}
		if res.Digest != pause.Digest.String() {
			t.Errorf("oras discover resolved %s to %s, want %s", pause.Ref(), res.Digest, pause.Digest)
		}
		got := map[string]string{}
		for _, r := range res.Referrers {
			got[r.Digest] = r.ArtifactType
		}
		return got
	}
	if got := discover(); !maps.Equal(got, types) {
		t.Errorf("oras discover %s: %v, the emulator has %v", pause.Ref(), got, types)
	}
	sboms := map[string]string{}
	for d, at := range types {
		if at == catalog.ArtifactTypeSPDX {
			sboms[d] = at
		}
	}
	if got := discover("--artifact-type", catalog.ArtifactTypeSPDX); !maps.Equal(got, sboms) {
		t.Errorf("oras discover --artifact-type %s: %v, want %v", catalog.ArtifactTypeSPDX, got, sboms)
	}
}

func tagsOf(imgs map[string]catalog.Image, repo string) []string {
	var out []string
	for _, i := range imgs {
		if i.Repo == repo {
			out = append(out, i.Tag)
		}
	}
	slices.Sort(out)
	return out
}

func digestStrings(ds []v1.Hash) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}
