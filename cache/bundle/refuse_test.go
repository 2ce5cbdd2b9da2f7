package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// testBundle is an image of many layers, its blobs in this order in the
// tarball: layers, config, manifest; index.json names it under refs.
type testBundle struct {
	tar      []byte
	layers   [][]byte
	manifest digest.Digest
}

const nLayers = 25

func newTestBundle(t *testing.T, omitLayer int, refs ...string) testBundle {
	t.Helper()
	var b testBundle
	var buf bytes.Buffer
	w, err := bundle.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var layers []string
	for i := range nLayers {
		l := bytes.Repeat([]byte(fmt.Sprintf("layer %02d;", i)), 100)
		b.layers = append(b.layers, l)
		if i != omitLayer {
			blob(t, w, l)
		}
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}`, digest.FromBytes(l), len(l)))
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := blob(t, w, cfg)
	man := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[%s]}`,
		cd, len(cfg), strings.Join(layers, ",")))
	b.manifest = blob(t, w, man)
	for _, ref := range refs {
		w.Image(ref, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: b.manifest, Size: int64(len(man))}, "")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b.tar = buf.Bytes()
	return b
}

// at is the offset of blob bytes b in the tarball.
func (b testBundle) at(t *testing.T, blob []byte) int {
	t.Helper()
	i := bytes.Index(b.tar, blob)
	if i < 0 {
		t.Fatal("blob not in the tarball")
	}
	return i
}

// newStore is an empty content store (in dir) and an in-memory index.
func newStore(t *testing.T) (string, *fsstore.Store, *badgermeta.Index) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "content")
	store, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	index, err := badgermeta.Open("", zap.NewNop(), badgermeta.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { index.Close() })
	return dir, store, index
}

// state is everything a store and an index hold.
type state struct {
	Files     map[string]string // path under the content dir: size and mtime
	Tags      []meta.TagLink
	Manifests []meta.ManifestLink
	Blobs     []meta.BlobLink
	Repos     map[string]meta.Repo
}

func snapshot(t *testing.T, dir string, index *badgermeta.Index) state {
	t.Helper()
	s := state{Files: map[string]string{}, Repos: map[string]meta.Repo{}}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		s.Files[rel] = fmt.Sprint(fi.Size(), " ", fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := index.EachTag(context.Background(), "", func(l meta.TagLink) error { s.Tags = append(s.Tags, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := index.EachManifest(context.Background(), "", func(l meta.ManifestLink) error { s.Manifests = append(s.Manifests, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := index.EachBlob(context.Background(), "", func(l meta.BlobLink) error { s.Blobs = append(s.Blobs, l); return nil }); err != nil {
		t.Fatal(err)
	}
	repos, _, err := index.Repos(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos {
		if s.Repos[r], err = index.Repo(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// cancelAfter cancels its context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// A refused import leaves the content store and the index exactly as they
// were: the blobs it wrote are deleted, the records it wrote put back, and
// blobs the store held before stay untouched. The intact bundle then
// imports, without writing again the blob the store held.
func TestRefusedImportLeavesNothing(t *testing.T) {
	t.Parallel()
	const (
		newRef   = "example.com/new/app:v1"  // a new cached repository
		teamRef  = "example.com/team/app:v0" // overwrites a tag of a pushed one
		hugeRef  = "example.com/huge:v1"     // a repository name the index cannot store
		unmapped = "example.com/unmapped:v1" // the mapper refuses it
	)
	two := []string{newRef, teamRef}
	cases := []struct {
		name   string
		refs   []string
		omit   int                                                                   // a layer left out of the bundle, or -1
		input  func(t *testing.T, b testBundle, cancel context.CancelFunc) io.Reader // nil: the bundle as written
		wantIs error
		want   string
	}{
		{name: "one byte flipped in a late blob", refs: two, omit: -1, want: "does not verify",
			input: func(t *testing.T, b testBundle, _ context.CancelFunc) io.Reader {
				tar := bytes.Clone(b.tar)
				tar[b.at(t, b.layers[nLayers-1])+17] ^= 0x20
				return bytes.NewReader(tar)
			}},
		{name: "one byte flipped in a blob the store holds", refs: two, omit: -1, want: "does not verify",
			input: func(t *testing.T, b testBundle, _ context.CancelFunc) io.Reader {
				tar := bytes.Clone(b.tar)
				tar[b.at(t, b.layers[0])+17] ^= 0x20
				return bytes.NewReader(tar)
			}},
		{name: "truncated inside a late blob", refs: two, omit: -1, wantIs: bundle.ErrBadBundle, want: "truncated",
			input: func(t *testing.T, b testBundle, _ context.CancelFunc) io.Reader {
				return bytes.NewReader(b.tar[:b.at(t, b.layers[nLayers-2])+100])
			}},
		{name: "truncated before index.json", refs: two, omit: -1, wantIs: bundle.ErrBadBundle,
			input: func(t *testing.T, b testBundle, _ context.CancelFunc) io.Reader {
				i := b.at(t, []byte(ocispec.ImageIndexFile+"\x00"))
				return bytes.NewReader(b.tar[:i-i%512])
			}},
		{name: "cancelled halfway", refs: two, omit: -1, wantIs: context.Canceled,
			input: func(t *testing.T, b testBundle, cancel context.CancelFunc) io.Reader {
				return &cancelAfter{r: bytes.NewReader(b.tar), n: b.at(t, b.layers[nLayers/2]), cancel: cancel}
			}},
		{name: "incomplete image", refs: two, omit: nLayers - 1, want: "incomplete image"},
		{name: "a reference the mapper refuses", refs: []string{newRef, unmapped}, omit: -1, want: "not mapped"},
		{name: "an index write fails after two images are linked", refs: []string{newRef, teamRef, hugeRef}, omit: -1, want: "exceeded"},
	}
	mapper := func(ref string) (bundle.Target, error) {
		switch ref {
		case newRef:
			return bundle.Target{Repo: "new/app", Tag: "v1", Origin: meta.OriginCache}, nil
		case teamRef:
			return bundle.Target{Repo: "team/app", Tag: "v0", Origin: meta.OriginPush}, nil
		case hugeRef:
			return bundle.Target{Repo: strings.Repeat("a/", 40_000) + "huge", Tag: "v1", Origin: meta.OriginCache}, nil
		}
		return bundle.Target{}, errors.New("not mapped")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b := newTestBundle(t, c.omit, c.refs...)
			var in io.Reader = bytes.NewReader(b.tar)
			if c.input != nil {
				in = c.input(t, b, cancel)
			}
			dir, store, index := newStore(t)
			// Before: the first layer and another image's blob are stored;
			// team/app has tag v0 and the layer linked, which the import
			// overwrites before it fails.
			old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			first, other := b.layers[0], []byte("another image's manifest")
			for _, blob := range [][]byte{first, other} {
				if _, err := content.WriteBlob(ctx, store, digest.FromBytes(blob), blob); err != nil {
					t.Fatal(err)
				}
			}
			od := digest.FromBytes(other)
			if err := index.LinkBlob(context.Background(), "team/app", digest.FromBytes(first), meta.Blob{Size: int64(len(first)), Origin: meta.OriginPush, Added: old}); err != nil {
				t.Fatal(err)
			}
			if err := index.PutManifest(context.Background(), "team/app", od, meta.Manifest{MediaType: ocispec.MediaTypeImageManifest, Size: int64(len(other)), Origin: meta.OriginPush, Added: old},
				"v0", meta.Tag{Digest: od, MediaType: ocispec.MediaTypeImageManifest, Size: int64(len(other)), FetchedAt: old, Origin: meta.OriginPush}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir, index)

			_, err := bundle.Import(ctx, in, store, index, mapper, time.Now())
			if err == nil {
				t.Fatal("accepted")
			}
			if (c.wantIs != nil && !errors.Is(err, c.wantIs)) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %.300v, want %v %q", err, c.wantIs, c.want)
			}
			if !strings.HasSuffix(err.Error(), "(nothing was imported)") {
				t.Errorf("the error does not say nothing was imported: %.300v", err)
			}
			if after := snapshot(t, dir, index); !reflect.DeepEqual(after, before) {
				t.Fatalf("a refused import changed the store:\nbefore %+v\nafter  %+v", before, after)
			}
			if got, err := content.ReadAll(ctx, store, digest.FromBytes(first)); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("the blob stored before the import: %q %v", got, err)
			}

			good := newTestBundle(t, -1, two...)
			rep, err := bundle.Import(context.Background(), bytes.NewReader(good.tar), store, index, mapper, time.Now())
			if err != nil || rep.Images != 2 || rep.Blobs != nLayers+2 {
				t.Fatalf("intact bundle: %+v %v", rep, err)
			}
			after := snapshot(t, dir, index)
			for p, f := range before.Files {
				if after.Files[p] != f {
					t.Errorf("%s was written again: %s, was %s", p, after.Files[p], f)
				}
			}
			if n := len(after.Files) - len(before.Files); n != nLayers+1 {
				t.Errorf("%d files added, want %d", n, nLayers+1)
			}
			if tag, err := index.Tag(context.Background(), "team/app", "v0"); err != nil || tag.Digest != good.manifest {
				t.Errorf("team/app:v0 after the intact import: %+v %v", tag, err)
			}
		})
	}
}
