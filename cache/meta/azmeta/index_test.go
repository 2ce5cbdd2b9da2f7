package azmeta_test

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// requests is how many requests of op the index behind reg sent.
func requests(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	return promtest.Sum(t, reg, "airlock_meta_azure_requests_total", "op", op)
}

// Warm reads are answered from the cache without a request; this
// replica's own writes are seen at once, whatever was cached (a value, a
// NotFound); concurrent cold reads of one record share one request.
func testReadCache(t *testing.T, srv *azuritetest.Server) {
	reg := prometheus.NewRegistry()
	ctr := azuretest.New(t, srv, "m")
	x := open(t, ctr, reg, azmeta.WithMutableTTL(time.Hour))
	d, layer := dg("m"), dg("layer")
	if _, err := x.Blob(bg, "r", layer); !errors.Is(err, meta.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := x.Tag(bg, "r", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatal(err)
	}
	must(t, x.LinkBlob(bg, "r", layer, meta.Blob{Size: 1, Origin: meta.OriginCache}))
	must(t, x.PutTag(bg, "r", "v1", tagOf(d, meta.OriginCache)))
	if _, err := x.Blob(bg, "r", layer); err != nil {
		t.Fatalf("a cached NotFound outlived this replica's link: %v", err)
	}
	if got, err := x.Tag(bg, "r", "v1"); err != nil || got.Digest != d {
		t.Fatalf("a cached NotFound outlived this replica's tag: %v %v", got.Digest, err)
	}
	gets := requests(t, reg, "get")
	for range 10 {
		if _, err := x.Blob(bg, "r", layer); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Tag(bg, "r", "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := requests(t, reg, "get") - gets; n != 0 {
		t.Fatalf("warm reads sent %v requests", n)
	}
	if hits := promtest.Sum(t, reg, "airlock_meta_cache_hits_total"); hits < 20 {
		t.Fatalf("%v cache hits counted, want at least 20", hits)
	}
	moved := dg("moved")
	must(t, x.PutTag(bg, "r", "v1", tagOf(moved, meta.OriginCache)))
	if got, err := x.Tag(bg, "r", "v1"); err != nil || got.Digest != moved {
		t.Fatalf("a cached tag outlived this replica's write: %v %v", got.Digest, err)
	}
	must(t, x.DeleteTag(bg, "r", "v1"))
	if _, err := x.Tag(bg, "r", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a cached tag outlived this replica's delete: %v", err)
	}
	must(t, x.Remove(bg, meta.Removal{Repo: "r", Blobs: []digest.Digest{layer}}))
	if _, err := x.Blob(bg, "r", layer); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a cached link outlived this replica's removal: %v", err)
	}

	must(t, x.PutManifest(bg, "r", d, meta.Manifest{MediaType: "m", Size: 1, Origin: meta.OriginCache}, "", meta.Tag{}))
	regY := prometheus.NewRegistry()
	y := open(t, azuretest.Open(t, srv, ctr.Name()), regY) // a cold replica
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := y.Manifest(bg, "r", d); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := requests(t, regY, "get"); n != 1 {
		t.Fatalf("20 concurrent cold reads of one manifest sent %v requests, want 1", n)
	}
}

// The blob links and manifests this replica linked are served from its
// read cache without a request (the replica that filled a blob serves it
// next), as Azure holds them; its tags are read again (they move); another
// replica's later write of a link is what the other replica reads.
func testOwnLinksKept(t *testing.T, srv *azuritetest.Server) {
	reg := prometheus.NewRegistry()
	ctr := azuretest.New(t, srv, "m")
	x := open(t, ctr, reg)
	d, layer := dg("m"), dg("layer")
	added := time.Date(2026, 11, 27, 6, 30, 0, 123456789, time.UTC)
	b := meta.Blob{Size: 7, Origin: meta.OriginCache, Added: added}
	m := meta.Manifest{MediaType: "m", Size: 3, Refs: []digest.Digest{layer}, Origin: meta.OriginCache, Added: added}
	must(t, x.LinkBlob(bg, "r", layer, b))
	must(t, x.PutManifest(bg, "r", d, m, "v1", tagOf(d, meta.OriginCache)))
	gets := requests(t, reg, "get")
	for range 5 {
		gotB, err := x.Blob(bg, "r", layer)
		if err != nil || gotB.Size != b.Size || !gotB.Added.Equal(added) || gotB.Origin != b.Origin {
			t.Fatalf("own link: %+v %v", gotB, err)
		}
		gotM, err := x.Manifest(bg, "r", d)
		if err != nil || gotM.Size != m.Size || len(gotM.Refs) != 1 || gotM.Refs[0] != layer || !gotM.Added.Equal(added) {
			t.Fatalf("own manifest: %+v %v", gotM, err)
		}
	}
	if n := requests(t, reg, "get") - gets; n != 0 {
		t.Fatalf("reads of this replica's own links sent %v requests, want 0", n)
	}
	// What a cold replica reads from Azure is what the writer serves.
	y := open(t, azuretest.Open(t, srv, ctr.Name()), prometheus.NewRegistry())
	fromAzure, err := y.Blob(bg, "r", layer)
	if err != nil {
		t.Fatal(err)
	}
	if fromCache, _ := x.Blob(bg, "r", layer); fromCache != fromAzure {
		t.Fatalf("the writer serves %+v, Azure holds %+v", fromCache, fromAzure)
	}
	if _, err := x.Tag(bg, "r", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := requests(t, reg, "get") - gets; n != 1 {
		t.Fatalf("this replica's own tag cost %v requests, want 1 (it is read back once, ahead)", n)
	}
}

// A NotFound this replica cached is not served once it is told that a
// peer linked the tag or manifest (the owner answered its relay); without
// that it is, for the mutable TTL. What the peer linked is read ahead (one
// request each): the reads that follow ask nothing.
func testPeerLinked(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	reg := prometheus.NewRegistry()
	x := open(t, ctr, reg, azmeta.WithMutableTTL(time.Hour))
	owner := open(t, azuretest.Open(t, srv, ctr.Name()), prometheus.NewRegistry())
	d := dg("relayed")
	if _, err := x.Manifest(bg, "r", d); !errors.Is(err, meta.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := x.Tag(bg, "r", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatal(err)
	}
	must(t, owner.PutManifest(bg, "r", d, meta.Manifest{MediaType: "m", Size: 1, Origin: meta.OriginCache}, "v1", tagOf(d, meta.OriginCache)))
	if _, err := x.Manifest(bg, "r", d); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("the cached NotFound went without being told: %v", err)
	}
	g := requests(t, reg, "get")
	x.PeerLinked("r", "v1")
	x.PeerLinked("r", d.String())
	readAheadDone(t, reg, g+2, "the tag and manifest a peer linked")
	if m, err := x.Manifest(bg, "r", d); err != nil || m.Size != 1 {
		t.Fatalf("after PeerLinked: %+v %v", m, err)
	}
	if tg, err := x.Tag(bg, "r", "v1"); err != nil || tg.Digest != d {
		t.Fatalf("after PeerLinked: %+v %v", tg, err)
	}
	if n := requests(t, reg, "get") - g; n != 2 {
		t.Fatalf("what a peer linked, read ahead, then asked for: %v record reads, want 2", n)
	}
}

// Walks read small records from the listing (no request per record) and
// large ones from their blobs, whole.
func testWalkReadsListings(t *testing.T, srv *azuritetest.Server) {
	reg := prometheus.NewRegistry()
	x := open(t, azuretest.New(t, srv, "m"), reg)
	for i := range 30 {
		d := dg(fmt.Sprint(i))
		must(t, x.LinkBlob(bg, "r", d, meta.Blob{Size: int64(i), Origin: meta.OriginCache}))
		must(t, x.PutManifest(bg, "r", d, meta.Manifest{MediaType: "m", Size: 1, Origin: meta.OriginCache, Refs: []digest.Digest{d}}, fmt.Sprint("t", i), tagOf(d, meta.OriginCache)))
	}
	big := meta.Manifest{MediaType: "application/vnd.oci.image.index.v1+json", Size: 9, Origin: meta.OriginPush, Annotations: map[string]string{"k": "välue"}}
	for i := range 100 {
		big.Refs = append(big.Refs, dg(fmt.Sprint("child", i)))
	}
	must(t, x.PutManifest(bg, "r", dg("big"), big, "", meta.Tag{}))
	gets := requests(t, reg, "get")
	var blobs, tags, mans int
	must(t, x.EachBlob(bg, "", func(meta.BlobLink) error { blobs++; return nil }))
	must(t, x.EachTag(bg, "r", func(meta.TagLink) error { tags++; return nil }))
	must(t, x.EachManifest(bg, "r", func(l meta.ManifestLink) error {
		mans++
		if l.Digest == dg("big") && (len(l.Refs) != 100 || l.Annotations["k"] != "välue") {
			t.Errorf("the large manifest walked without its record: %d refs, %v", len(l.Refs), l.Annotations)
		}
		return nil
	}))
	if blobs != 30 || tags != 30 || mans != 31 {
		t.Fatalf("walked %d blobs, %d tags, %d manifests", blobs, tags, mans)
	}
	if n := requests(t, reg, "get") - gets; n != 1 {
		t.Fatalf("the walks read %v records one by one, want 1 (the large one)", n)
	}
}

// An upload session started on one replica is continued and ended on
// another; conditional updates fence two replicas taking a chunk at once.
func testUploads(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	x, y := open(t, ctr, nil), open(t, azuretest.Open(t, srv, ctr.Name()), nil)
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	u := azmeta.Upload{Repo: "team/app", Client: "10.0.0.9", Algorithm: digest.SHA256, Data: "uploads/s1", Started: now, Updated: now}
	v1, err := x.CreateUpload(bg, "s1", u)
	must(t, err)
	if _, err := y.CreateUpload(bg, "s1", u); !errors.Is(err, azmeta.ErrExists) {
		t.Fatalf("creating a taken session: %v, want ErrExists", err)
	}
	got, v, err := y.Upload(bg, "s1")
	if err != nil || v != v1 || got.Repo != u.Repo || !got.Started.Equal(now) {
		t.Fatalf("the other replica reads %+v %q %v", got, v, err)
	}
	h := sha256.New()
	h.Write([]byte("chunk one "))
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	must(t, err)
	got.Size, got.Hash = 10, state
	v2, err := y.UpdateUpload(bg, "s1", got, v)
	must(t, err)
	if _, err := x.UpdateUpload(bg, "s1", got, v1); !errors.Is(err, azmeta.ErrChanged) {
		t.Fatalf("an update from a stale version: %v, want ErrChanged", err)
	}
	back, _, err := x.Upload(bg, "s1")
	must(t, err)
	resumed := sha256.New()
	must(t, resumed.(encoding.BinaryUnmarshaler).UnmarshalBinary(back.Hash))
	resumed.Write([]byte("chunk two"))
	if want := sha256.Sum256([]byte("chunk one chunk two")); back.Size != 10 || !bytes.Equal(resumed.Sum(nil), want[:]) {
		t.Fatalf("the hash resumed from the record gives %x (size %d), want %x", resumed.Sum(nil), back.Size, want)
	}
	_, err = x.CreateUpload(bg, "s2", u)
	must(t, err)
	var ids []string
	must(t, y.EachUpload(bg, func(id string, u azmeta.Upload) error {
		ids = append(ids, id+":"+u.Repo)
		return nil
	}))
	if fmt.Sprint(ids) != "[s1:team/app s2:team/app]" {
		t.Fatalf("sessions listed: %v", ids)
	}
	if err := x.DeleteUpload(bg, "s1", v1); !errors.Is(err, azmeta.ErrChanged) {
		t.Fatalf("a delete from a stale version: %v, want ErrChanged", err)
	}
	must(t, x.DeleteUpload(bg, "s1", v2))
	if _, _, err := y.Upload(bg, "s1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("an ended session: %v", err)
	}
	if _, err := y.UpdateUpload(bg, "s1", got, v2); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("updating an ended session: %v, want NotFound", err)
	}
	if err := y.DeleteUpload(bg, "s1", ""); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("ending an ended session: %v, want NotFound", err)
	}
}

// Replicas racing to create a secret all get the winner's bytes; a secret
// once read costs no request.
func testSecrets(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	regX := prometheus.NewRegistry()
	x, y := open(t, ctr, regX), open(t, azuretest.Open(t, srv, ctr.Name()), nil)
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := []*azmeta.Index{x, y}[i%2]
			b, err := r.Secret(bg, azmeta.PeerKey, func() ([]byte, error) { return []byte(fmt.Sprint("key of ", i)), nil })
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		}()
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) == 0 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("replicas got different peer keys: %q", got)
		}
	}
	before := promtest.Sum(t, regX, "airlock_meta_azure_requests_total")
	b, err := x.Secret(bg, azmeta.PeerKey, func() ([]byte, error) { return nil, errors.New("must not create again") })
	if err != nil || !bytes.Equal(b, got[0]) || promtest.Sum(t, regX, "airlock_meta_azure_requests_total") != before {
		t.Fatalf("a secret read before: %q %v, or it cost a request", b, err)
	}
	stored, _, err := ctr.Get(bg, string(azmeta.PeerKey))
	if err != nil || !bytes.Equal(stored, got[0]) {
		t.Fatalf("the container holds %q (%v) as %s", stored, err, azmeta.PeerKey)
	}
	if s, err := y.Secret(bg, azmeta.SigningKey, func() ([]byte, error) { return []byte("pem"), nil }); err != nil || string(s) != "pem" {
		t.Fatalf("a second secret: %q %v", s, err)
	}
	for name, create := range map[azmeta.SecretName]func() ([]byte, error){
		"meta/exclusive": func() ([]byte, error) { return []byte("x"), nil },
		"":               func() ([]byte, error) { return []byte("x"), nil },
		"cluster/empty":  func() ([]byte, error) { return nil, nil },
		"cluster/broken": func() ([]byte, error) { return nil, errors.New("no entropy") },
	} {
		if _, err := x.Secret(bg, name, create); err == nil {
			t.Errorf("secret %q: no error", name)
		}
	}
}

// A name too long for the service is an error on write and NotFound on
// read and delete, never a request the service refuses with a 400.
func testLongNames(t *testing.T, srv *azuritetest.Server) {
	reg := prometheus.NewRegistry()
	x := open(t, azuretest.New(t, srv, "m"), reg)
	long := strings.Repeat("a/", 600)
	if err := x.PutTag(bg, long, "v1", tagOf(dg("x"), meta.OriginCache)); err == nil {
		t.Fatal("a tag of a repository named past the service's limit was written")
	}
	if _, err := x.Tag(bg, "r", long); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("reading it: %v, want NotFound", err)
	}
	if err := x.DeleteTag(bg, "r", long); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("deleting it: %v, want NotFound", err)
	}
	if n := promtest.Sum(t, reg, "airlock_meta_azure_requests_total", "result", "error"); n != 0 {
		t.Fatalf("%v requests failed", n)
	}
}
