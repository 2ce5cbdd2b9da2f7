package fromdir

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.uber.org/zap"

	"github.com/airlock/airlock/internal/leaktest"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestSplitRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, repo, tag string }{
		{"mcr.microsoft.com/oss/kubernetes/pause:3.10", "oss/kubernetes/pause", "3.10"},
		{"localhost:5000/app:v1", "app", "v1"},
		{"localhost/app", "app", ""},
		{"busybox:latest", "busybox", "latest"},
		{"library/busybox", "library/busybox", ""},
		{"example.com/a/b@sha256:abc", "a/b", ""},
	} {
		if r, tg := SplitRef(tc.in); r != tc.repo || tg != tc.tag {
			t.Errorf("SplitRef(%q) = %q, %q", tc.in, r, tg)
		}
	}
}

// Fixture writes, under dir: an OCI layout "team/app" holding an image tagged
// "v1" (bare ref.name) and an index tagged by full reference; and a tarball
// with two RepoTags. It returns the digests a pull must see.
type fixture struct {
	img, idx, tarImg v1.Hash
}

func writeFixture(t *testing.T, dir string) fixture {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "team", "app"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{AnnotationRefName: "v1"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{AnnotationRefName: "registry.example.com/other/multi:2.0"})); err != nil {
		t.Fatal(err)
	}
	// An entry whose blob is missing is skipped, not fatal.
	broken, _ := random.Image(64, 1)
	if err := lp.AppendImage(broken, layout.WithAnnotations(map[string]string{AnnotationRefName: "broken"})); err != nil {
		t.Fatal(err)
	}
	bl, _ := broken.Layers()
	bd, _ := bl[0].Digest()
	if err := os.Remove(filepath.Join(dir, "team", "app", "blobs", "sha256", bd.Hex)); err != nil {
		t.Fatal(err)
	}

	tarImg, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	tarImg = mutate.MediaType(tarImg, "application/vnd.docker.distribution.manifest.v2+json")
	t1, _ := name.NewTag("mcr.microsoft.com/saved/tool:1.0")
	t2, _ := name.NewTag("saved/tool:latest")
	if err := tarball.MultiRefWriteToFile(filepath.Join(dir, "saved.tar"), map[name.Reference]v1.Image{t1: tarImg, t2: tarImg}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := fixture{}
	f.img, _ = img.Digest()
	f.idx, _ = idx.Digest()
	f.tarImg, _ = tarImg.Digest()
	return f
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFixture(t, dir)
	b := catalog.NewBuilder()
	if err := Load(context.Background(), b, dir, t.TempDir(), zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	c, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo, tag string
		want      v1.Hash
		platforms int
	}{
		{"team/app", "v1", f.img, 1},
		{"other/multi", "2.0", f.idx, 2},
		{"saved/tool", "1.0", f.tarImg, 1},
		{"saved/tool", "latest", f.tarImg, 1},
	} {
		img, ok := c.Image(tc.repo, tc.tag)
		if !ok || img.Digest != tc.want || len(img.Platforms) != tc.platforms {
			t.Errorf("%s:%s = %+v, want digest %s", tc.repo, tc.tag, img, tc.want)
		}
	}
	if _, ok := c.Image("team/app", "broken"); ok {
		t.Error("incomplete layout entry served")
	}
	for _, bl := range c.Blobs() {
		rc, err := bl.Open()
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || d != bl.Digest || n != bl.Size {
			t.Errorf("blob %s: %s %d %v", bl.Digest, d, n, err)
		}
	}
}
