package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func blob(t *testing.T, w *bundle.Writer, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	if err := w.Blob(d, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

// Import loads what it can verify and links images only when each one is
// complete; a layer missing from the bundle refuses the whole import, but a
// foreign (non-distributable) layer is not needed, as in a pull.
func TestImport(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		skipLayer bool
		foreign   bool
		wantErr   string
	}{
		{"complete", false, false, ""},
		{"missing layer", true, false, "incomplete image"},
		{"foreign layer", true, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := bundle.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			layer := []byte("layer bytes")
			ld := digest.FromBytes(layer)
			if !c.skipLayer {
				blob(t, w, layer)
			}
			cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
			cd := blob(t, w, cfg)
			layerType := "application/vnd.oci.image.layer.v1.tar"
			if c.foreign {
				layerType = "application/vnd.oci.image.layer.nondistributable.v1.tar"
			}
			man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":37},"layers":[{"mediaType":"` + layerType + `","digest":"` + ld.String() + `","size":11}]}`)
			md := blob(t, w, man)
			if w.Blob(md, int64(len(man)), bytes.NewReader(man)) != nil || !w.Has(md) {
				t.Fatal("a blob added twice must be skipped")
			}
			w.Image("example.com/team/app:v1", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(man))}, "")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_, store, index := newStore(t)
			mapper := func(ref string) (bundle.Target, error) {
				if ref != "example.com/team/app:v1" {
					t.Errorf("ref %q", ref)
				}
				return bundle.Target{Repo: "team/app", Tag: "v1", Origin: meta.OriginPush}, nil
			}
			rep, err := bundle.Import(context.Background(), &buf, store, index, mapper, time.Now())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				if _, err := index.Tag(context.Background(), "team/app", "v1"); !errors.Is(err, meta.ErrNotFound) {
					t.Fatalf("a refused import linked the tag: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.foreign {
				m, err := index.Manifest(context.Background(), "team/app", md)
				if err != nil || len(m.Refs) != 1 || m.Refs[0] != cd {
					t.Fatalf("manifest with a foreign layer %+v %v: want only the config as a ref", m, err)
				}
				return
			}
			if rep.Images != 1 || rep.Pushed != 1 || rep.Blobs != 3 || rep.Manifests != 1 {
				t.Fatalf("report %+v", rep)
			}
			tag, err := index.Tag(context.Background(), "team/app", "v1")
			if err != nil || tag.Digest != md || tag.Origin != meta.OriginPush {
				t.Fatalf("tag %+v %v", tag, err)
			}
			m, err := index.Manifest(context.Background(), "team/app", md)
			if err != nil || len(m.Refs) != 2 {
				t.Fatalf("manifest %+v %v", m, err)
			}
			if _, err := index.Blob(context.Background(), "team/app", ld); err != nil {
				t.Fatalf("layer link: %v", err)
			}
		})
	}
}

func TestImportRefusesNonBundles(t *testing.T) {
	t.Parallel()
	_, err := bundle.Import(context.Background(), strings.NewReader("not a tarball"), nil, nil, nil, time.Now())
	if !errors.Is(err, bundle.ErrBadBundle) {
		t.Fatalf("err %v", err)
	}
}
