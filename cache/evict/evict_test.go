package evict_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/upstream/upstreamtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

const layerSize = 40_000

// pushWithBase pushes an image made of base and a layer of its own.
func pushWithBase(t *testing.T, up *upstreamtest.Upstream, repoTag string, base v1.Layer) v1.Image {
	t.Helper()
	own, err := random.Layer(layerSize, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, base, own)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(up.Ref(t, repoTag), img, up.Setup()); err != nil {
		t.Fatal(err)
	}
	return img
}

// putPushed stores a pushed image (a config and a manifest) in repo.
func (e *env) putPushed(repo, tag string) digest.Digest {
	e.t.Helper()
	ctx := context.Background()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := digest.FromBytes(cfg)
	if _, err := content.WriteBlob(ctx, e.store, cd, cfg); err != nil {
		e.t.Fatal(err)
	}
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":` + strconv.Itoa(len(cfg)) + `},"layers":[]}`)
	md := digest.FromBytes(man)
	if _, err := content.WriteBlob(ctx, e.store, md, man); err != nil {
		e.t.Fatal(err)
	}
	old := e.clock.Now().Add(-24 * time.Hour)
	if err := e.index.LinkBlob(context.Background(), repo, cd, meta.Blob{Size: int64(len(cfg)), Origin: meta.OriginPush, Added: old}); err != nil {
		e.t.Fatal(err)
	}
	mt := "application/vnd.oci.image.manifest.v1+json"
	err := e.index.PutManifest(context.Background(), repo, md, meta.Manifest{MediaType: mt, Size: int64(len(man)), Refs: []digest.Digest{cd}, Origin: meta.OriginPush, Added: old},
		tag, meta.Tag{Digest: md, MediaType: mt, Size: int64(len(man)), FetchedAt: old, Origin: meta.OriginPush})
	if err != nil {
		e.t.Fatal(err)
	}
	return md
}

// links returns, for every manifest link, the child manifests linked in its
// repository: eviction must never leave a parent without them.
func (e *env) links() map[string][]string {
	out := map[string][]string{}
	have := map[string]bool{}
	var all []meta.ManifestLink
	e.index.EachManifest(context.Background(), "", func(l meta.ManifestLink) error {
		have[l.Repo+"@"+l.Digest.String()] = true
		all = append(all, l)
		return nil
	})
	for _, l := range all {
		k := l.Repo + "@" + l.Digest.String()
		out[k] = []string{}
		for _, r := range l.Refs {
			if have[l.Repo+"@"+r.String()] {
				out[k] = append(out[k], l.Repo+"@"+r.String())
			}
		}
	}
	return out
}

func (e *env) hasTag(repo, tag string) bool {
	_, err := e.index.Tag(context.Background(), repo, tag)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

// A quota filled past its high watermark is brought under the low one by
// evicting the least recently used images first; pinned and pushed images
// and recently used ones survive; every survivor still pulls completely
// with the upstream down; an index never outlives its children.
func TestEvictionBringsStoreUnderQuota(t *testing.T) {
	t.Parallel()
	pinned := prefix + "oss/pinned:1"
	e := newEnv(t, evict.Policy{Pins: []string{pinned}})
	base, err := random.Layer(layerSize, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	e.up.PushImage(t, "oss/pinned:1", layerSize, 1)
	e.up.PushImage(t, "oss/a:1", layerSize, 1)
	pushWithBase(t, e.up, "oss/b:1", base)
	e.up.PushIndex(t, "oss/idx:1", layerSize)
	pushWithBase(t, e.up, "oss/c:1", base)
	e.up.PushImage(t, "oss/d:1", layerSize, 1)
	e.up.PushImage(t, "oss/e:1", layerSize, 1)
	e.putPushed("team/app", "v1")

	// Least recently used first: a, idx, c, d, e, then b (pulled again).
	for _, name := range []string{"pinned", "a", "b", "idx", "c", "d", "e", "b"} {
		if err := e.pull(prefix+"oss/"+name, "1"); err != nil {
			t.Fatalf("pull %s: %v", name, err)
		}
		e.clock.Advance(time.Minute)
	}
	ctx := context.Background()
	rep, err := e.col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.EvictedImages != 0 || rep.DeletedBlobs != 0 {
		t.Fatalf("unbounded store: nothing may be evicted: %+v", rep)
	}
	total := rep.Before
	before := e.links()

	// Quota = what is stored: over the high watermark (0.9), so down to 0.8.
	if err := e.col.SetPolicy(evict.Policy{MaxBytes: total, Pins: []string{pinned}}); err != nil {
		t.Fatal(err)
	}
	rep, err = e.col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("total %d: %+v", total, rep)
	if rep.After > total*8/10 || rep.After != e.col.Used() {
		t.Fatalf("after eviction %d bytes (estimate %d), want <= %d", rep.After, e.col.Used(), total*8/10)
	}
	order := []string{"a", "idx", "c", "d", "e", "b"}
	evicted := 0
	for i, name := range order {
		gone := !e.hasTag(prefix+"oss/"+name, "1")
		if gone && i != evicted {
			t.Fatalf("%s evicted before less recently used %v", name, order[evicted:i])
		}
		if gone {
			evicted++
		}
	}
	if evicted == 0 || evicted == len(order) {
		t.Fatalf("evicted %d images of %d; want some, not all", evicted, len(order))
	}
	if !e.hasTag(prefix+"oss/pinned", "1") || !e.hasTag("team/app", "v1") {
		t.Fatal("pinned or pushed image evicted")
	}
	e.consistent()
	after := e.links()
	for parent, children := range before {
		if _, kept := after[parent]; !kept {
			continue
		}
		for _, c := range children {
			if _, ok := after[c]; !ok {
				t.Errorf("%s survived without its child %s", parent, c)
			}
		}
	}
	if got := e.metric("airlock_evicted_bytes_total"); got != float64(rep.EvictedBytes) || got == 0 {
		t.Fatalf("airlock_evicted_bytes_total %v, report %d", got, rep.EvictedBytes)
	}
	if e.metric("airlock_storage_pinned_bytes") == 0 || e.metric("airlock_storage_pushed_bytes") == 0 {
		t.Fatal("pinned and pushed bytes not measured")
	}

	// Survivors pull completely from the cache alone.
	e.up.AddFault(upstreamtest.Fault{Status: 503})
	for _, name := range append([]string{"pinned"}, order[evicted:]...) {
		if err := e.pull(prefix+"oss/"+name, "1"); err != nil {
			t.Fatalf("survivor %s does not pull with the upstream down: %v", name, err)
		}
	}
	// Evicted images come back from the upstream.
	e.up.ClearFaults()
	for _, name := range order[:evicted] {
		if err := e.pull(prefix+"oss/"+name, "1"); err != nil {
			t.Fatalf("evicted %s does not pull again: %v", name, err)
		}
	}
}

// A layer shared by two images stays while either needs it; unpinning the
// last one frees it. Pins from the API count like configured ones.
func TestEvictionKeepsSharedBlobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, evict.Policy{})
	base, _ := random.Layer(layerSize, types.DockerLayer)
	baseD, _ := base.Digest()
	b := pushWithBase(t, e.up, "oss/b:1", base)
	c := pushWithBase(t, e.up, "oss/c:1", base)
	if err := e.col.Pin(context.Background(), []string{prefix + "oss/b:1"}, "cluster-1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"c", "b"} {
		if err := e.pull(prefix+"oss/"+n, "1"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := e.col.SetPolicy(evict.Policy{MaxBytes: 1}); err != nil { // pulled, now over quota
		t.Fatal(err)
	}
	if _, err := e.col.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if e.hasTag(prefix+"oss/c", "1") || !e.hasTag(prefix+"oss/b", "1") {
		t.Fatal("want c evicted and pinned b kept")
	}
	if _, err := e.store.Stat(ctx, digest.Digest(baseD.String())); err != nil {
		t.Fatalf("shared layer deleted while b needs it: %v", err)
	}
	cl, _ := c.Layers()
	cown, _ := cl[1].Digest()
	if _, err := e.store.Stat(ctx, digest.Digest(cown.String())); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("c's own layer kept: %v", err)
	}
	e.consistent()
	e.up.AddFault(upstreamtest.Fault{Status: 503})
	if err := e.pull(prefix+"oss/b", "1"); err != nil {
		t.Fatal(err)
	}
	e.up.ClearFaults()

	ps, err := e.col.Pins(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Source != "api" || ps[0].Owner != "cluster-1" {
		t.Fatalf("pins %+v %v", ps, err)
	}
	if n, err := e.col.Unpin(context.Background(), nil, "cluster-1"); n != 1 || err != nil {
		t.Fatalf("unpin by owner: %d %v", n, err)
	}
	e.clock.Advance(time.Minute)
	rep, err := e.col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.After != 0 || e.hasTag(prefix+"oss/b", "1") {
		t.Fatalf("unpinned b should be gone with its layers: %+v", rep)
	}
	bd, _ := b.Digest()
	if _, err := e.index.Manifest(context.Background(), prefix+"oss/b", digest.Digest(bd.String())); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("b's manifest link: %v", err)
	}
	if repos, _, _ := e.index.Repos(context.Background(), "", 0); slices.Contains(repos, prefix+"oss/b") {
		t.Fatalf("empty cached repository still listed: %v", repos)
	}
	e.consistent()
}

// Garbage collection deletes blob files no link needs once they are older
// than the grace period (a fill or push links its blobs just after writing
// them), and never a blob an image needs, however old.
func TestCollectsUnreferencedBlobsAfterGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, evict.Policy{})
	e.up.PushImage(t, "oss/a:1", layerSize, 1)
	if err := e.pull(prefix+"oss/a", "1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	orphan := []byte("written, never linked")
	od := digest.FromBytes(orphan)
	if _, err := content.WriteBlob(ctx, e.store, od, orphan); err != nil {
		t.Fatal(err)
	}
	rep, err := e.col.Collect(ctx)
	if err != nil || rep.DeletedBlobs != 0 {
		t.Fatalf("within the grace period: %+v %v", rep, err)
	}
	e.clock.Advance(2 * time.Hour)
	rep, err = e.col.Collect(ctx)
	if err != nil || rep.DeletedBlobs != 1 || rep.DeletedBytes != int64(len(orphan)) {
		t.Fatalf("after the grace period: %+v %v", rep, err)
	}
	if _, err := e.store.Stat(ctx, od); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("orphan still stored: %v", err)
	}
	e.consistent()
	if got := e.metric("airlock_gc_runs_total"); got != 2 {
		t.Fatalf("airlock_gc_runs_total %v", got)
	}
	if err := e.pull(prefix+"oss/a", "1"); err != nil || e.up.Count("GET", "/blobs/") != 2 {
		t.Fatalf("the image must still be served from the cache: %v (upstream blob GETs %d)", err, e.up.Count("GET", "/blobs/"))
	}
}
