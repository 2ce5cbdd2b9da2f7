package mar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock/airlock/deploy/aks"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
	"github.com/airlock/airlock/upstream/mar/fromdir"
)

// remoteOpts returns ggcr options with an anonymous keychain and a transport
// closed at cleanup.
func remoteOpts(t *testing.T) []remote.Option {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return []remote.Option{remote.WithAuth(authn.Anonymous), remote.WithTransport(tr), remote.WithContext(t.Context())}
}

func ref(t *testing.T, s *Server, r string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s.Addr()+"/"+r, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestGGCRPullCountsOneFetchPerBlob pulls the whole 1.31 bootstrap set with
// go-containerregistry (token flow, 307 redirect) and checks the stats: every
// distinct blob fetched exactly once from the data listener.
func TestGGCRPullCountsOneFetchPerBlob(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	opts := remoteOpts(t)
	refs, err := aks.Bootstrap("1.31")
	if err != nil {
		t.Fatal(err)
	}
	fetched := map[v1.Hash]int64{} // digest -> size, fetched once each by this test
	for _, r := range refs {
		img := image(t, s, r.Repo, r.Tag)
		desc, err := remote.Get(ref(t, s, r.String()), opts...)
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if desc.Digest != img.Digest || desc.MediaType != img.MediaType {
			t.Fatalf("%s: got %s %s, catalog %s %s", r, desc.Digest, desc.MediaType, img.Digest, img.MediaType)
		}
		pm, ok := img.Platform("linux/amd64")
		if !ok {
			t.Fatalf("%s: no linux/amd64", r)
		}
		if img.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			if err := validateIndexManifests(idx); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
		}
		for _, l := range append([]v1.Descriptor{pm.Config}, pm.Layers...) {
			if _, ok := fetched[l.Digest]; ok {
				continue
			}
			fetched[l.Digest] = l.Size
			dref, err := name.NewDigest(s.Addr()+"/"+r.Repo+"@"+l.Digest.String(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			layer, err := remote.Layer(dref, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if d, n, err := sha256Of(layer.Compressed); err != nil || d != l.Digest || n != l.Size {
				t.Fatalf("%s layer %s: got %s (%d bytes): %v", r, l.Digest, d, n, err)
			}
		}
	}
	st, err := FetchStats(t.Context(), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	for d, size := range fetched {
		if got := st.Fetches(d.String()); got != 1 {
			t.Errorf("blob %s fetched %d times from the data listener", d, got)
		}
		if got := st.Count("GET", KindBlob, d.String()); got != 1 {
			t.Errorf("blob %s: %d registry GETs", d, got)
		}
		if st.BytesByDigest[d.String()] != size {
			t.Errorf("blob %s: %d bytes sent, size %d", d, st.BytesByDigest[d.String()], size)
		}
	}
	if st.Count("", KindToken, "") == 0 || st.Sum(Filter{Kind: KindBlob, Status: 307}).Count != int64(len(fetched)) ||
		st.Connections["registry"] == 0 || st.Connections["data"] == 0 || st.Statuses["307"] != int64(len(fetched)) {
		t.Errorf("stats: %+v", st)
	}
	if err := ResetStats(t.Context(), s.URL()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Total() != 0 || len(st.Connections) != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

// TestGGCRValidateImages validates every platform image of a Docker manifest
// list and an OCI index (including Windows) end to end.
func TestGGCRValidateImages(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	opts := remoteOpts(t)
	for _, r := range []string{"oss/kubernetes/kube-proxy:v1.30.7", "oss/kubernetes/azure-cloud-node-manager:v1.32.1", "containernetworking/azure-cns:v1.6.21"} {
		idx, err := remote.Index(ref(t, s, r), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateIndex(idx); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	img, err := remote.Image(ref(t, s, "oss/kubernetes/pause:3.10"), append(opts, remote.WithPlatform(v1.Platform{OS: "windows", Architecture: "amd64"}))...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.OS != "windows" {
		t.Fatalf("windows pause: %+v %v", cf, err)
	}
}

func TestFromLayoutAndTarball(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img, _ := random.Image(3000, 2)
	idx, _ := random.Index(1000, 2, 2)
	lp, err := layout.Write(filepath.Join(dir, "lab", "app"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{fromdir.AnnotationRefName: "v1"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{fromdir.AnnotationRefName: "example.com/lab/multi:2"})); err != nil {
		t.Fatal(err)
	}
	tarImg, _ := random.Image(5000, 3)
	tag, _ := name.NewTag("mcr.microsoft.com/lab/saved:1.0")
	if err := os.MkdirAll(filepath.Join(dir, "tars"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(filepath.Join(dir, "tars", "saved.tar"), tag, tarImg); err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{Catalog: catalog.NameNone, From: []string{dir}, CacheDir: t.TempDir()})
	opts := remoteOpts(t)
	for _, tc := range []struct {
		ref  string
		want v1.Hash
	}{
		{"lab/app:v1", must(img.Digest())},
		{"lab/saved:1.0", must(tarImg.Digest())},
	} {
		got, err := remote.Image(ref(t, s, tc.ref), opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		if d, _ := got.Digest(); d != tc.want {
			t.Errorf("%s: digest %s, want %s", tc.ref, d, tc.want)
		}
		if err := validateImage(got); err != nil {
			t.Errorf("%s: %v", tc.ref, err)
		}
	}
	gotIdx, err := remote.Index(ref(t, s, "lab/multi:2"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := gotIdx.Digest(); d != must(idx.Digest()) {
		t.Errorf("index digest %s", d)
	}
	if err := validateIndex(gotIdx); err != nil {
		t.Error(err)
	}
	if got := s.Catalog().Repos(); len(got) != 3 {
		t.Errorf("repos %v", got)
	}
}

// validateImage checks what ggcr's validate package would: every layer's
// compressed bytes hash to its digest and uncompressed bytes to its diff_id.
func validateImage(img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return fmt.Errorf("%d layers, %d diff_ids", len(layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		want, _ := l.Digest()
		if d, _, err := sha256Of(l.Compressed); err != nil || d != want {
			return fmt.Errorf("layer %d: digest %s, want %s (%v)", i, d, want, err)
		}
		if d, _, err := sha256Of(l.Uncompressed); err != nil || d != cf.RootFS.DiffIDs[i] {
			return fmt.Errorf("layer %d: diff_id %s, want %s (%v)", i, d, cf.RootFS.DiffIDs[i], err)
		}
	}
	return nil
}

// sha256Of is the SHA-256 and the size of the stream open returns.
func sha256Of(open func() (io.ReadCloser, error)) (v1.Hash, int64, error) {
	rc, err := open()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer rc.Close()
	return v1.SHA256(rc)
}

// validateIndexManifests checks that every child manifest of an index resolves.
func validateIndexManifests(idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range im.Manifests {
		if _, err := idx.Image(desc.Digest); err != nil {
			return err
		}
	}
	return nil
}

// validateIndex validates every image of an index.
func validateIndex(idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return err
		}
		if err := validateImage(img); err != nil {
			return fmt.Errorf("%s: %w", desc.Digest, err)
		}
	}
	return nil
}

func must(h v1.Hash, err error) v1.Hash {
	if err != nil {
		panic(err)
	}
	return h
}

// TestStartErrors covers configuration and listen failures.
func TestStartErrors(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Faults: []fault.Fault{{Kind: "blob"}}}, nil); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("New with a fault without action: %v", err)
	}
	s := start(t, Config{})
	for _, cfg := range []Config{
		{Listen: s.Addr(), CacheDir: sharedCache},     // port in use
		{DataListen: s.Addr(), CacheDir: sharedCache}, // port in use
		{Scale: "tiny", CacheDir: sharedCache},        // bad scale
		{From: []string{"/does/not/exist"}, CacheDir: sharedCache},
	} {
		srv, err := New(cfg, nil)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := srv.Start(ctx); err == nil {
			t.Errorf("Start(%+v) succeeded", cfg)
		}
		cancel()
		srv.Close()
	}
}
