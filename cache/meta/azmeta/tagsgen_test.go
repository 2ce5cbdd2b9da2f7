package azmeta_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// Tags cached past the mutable TTL are vouched for by one read of the
// tags generation instead of one read each; every kind of tag change on
// another replica (a move, a new tag, a delete, an untag by manifest
// removal, a removal) is still seen once the mutable TTL has passed.
func testTagsGeneration(t *testing.T, srv *azuritetest.Server) {
	const ttl = 400 * time.Millisecond
	a, b, regB := pair(t, srv, azmeta.WithMutableTTL(ttl))
	tags := make([]string, 9)
	for i := range tags {
		tags[i] = fmt.Sprintf("v%d", i)
		must(t, a.PutTag(bg, "r", tags[i], tagOf(dg(tags[i]), meta.OriginCache)))
	}
	readAll := func(what string) {
		t.Helper()
		for _, tag := range tags {
			if got, err := b.Tag(bg, "r", tag); err != nil || got.Digest != dg(tag) {
				t.Fatalf("%s: b reads %s: %v %v", what, tag, got.Digest, err)
			}
		}
	}
	readAll("cold")
	time.Sleep(ttl)
	gets, stats := requests(t, regB, "get"), requests(t, regB, "stat")
	readAll("past the TTL, nothing changed")
	if g, s := requests(t, regB, "get")-gets, requests(t, regB, "stat")-stats; g != 0 || s != 1 {
		t.Fatalf("nine cached tags past the TTL: %v record reads and %v generation reads, want 0 and 1", g, s)
	}

	seen := func(what, tag string, want digest.Digest) {
		t.Helper()
		time.Sleep(ttl)
		got, err := b.Tag(bg, "r", tag)
		switch {
		case want == "" && !errors.Is(err, meta.ErrNotFound):
			t.Fatalf("%s on a: b reads %s %v past the TTL, want NotFound", what, got.Digest, err)
		case want != "" && (err != nil || got.Digest != want):
			t.Fatalf("%s on a: b reads %s %v past the TTL, want %s", what, got.Digest, err, want)
		}
	}
	moved := dg("moved")
	must(t, a.PutTag(bg, "r", "v0", tagOf(moved, meta.OriginCache)))
	seen("a tag moved", "v0", moved)

	if _, err := b.Tag(bg, "r", "new"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatal(err)
	}
	d := dg("manifest")
	must(t, a.PutManifest(bg, "r", d, meta.Manifest{MediaType: "m", Size: 1, Origin: meta.OriginCache}, "new", tagOf(d, meta.OriginCache)))
	seen("a tag created with its manifest", "new", d)

	must(t, a.DeleteTag(bg, "r", "v1"))
	seen("a tag deleted", "v1", "")

	if _, err := a.RemoveManifest(bg, "r", d); err != nil {
		t.Fatal(err)
	}
	seen("the manifest of a tag removed", "new", "")

	must(t, a.Remove(bg, meta.Removal{Repo: "r", Tags: []string{"v2"}}))
	seen("a tag removed by the collector", "v2", "")
	for _, tag := range tags[3:] {
		if got, err := b.Tag(bg, "r", tag); err != nil || got.Digest != dg(tag) {
			t.Fatalf("an unchanged tag after the others changed: %s %v %v", tag, got.Digest, err)
		}
	}
}

// A replica that finds the tags generation moved by another replica (a
// reading, here after a peer told it of a tag it linked, as a relay does)
// reads its other outdated tags again in the background, once each, when
// the generation stops moving: a pull that goes on to them asks nothing
// on its way.
func testTagsRefreshed(t *testing.T, srv *azuritetest.Server) {
	for _, peer := range []bool{false, true} {
		t.Run(map[bool]string{false: "Read", true: "PeerLinked"}[peer], func(t *testing.T) {
			const ttl = 300 * time.Millisecond
			a, b, regB := pair(t, srv, azmeta.WithMutableTTL(ttl))
			tags := []string{"v0", "v1", "v2", "v3", "v4", "v5"}
			for _, tag := range tags {
				must(t, a.PutTag(bg, "r", tag, tagOf(dg(tag), meta.OriginCache)))
			}
			read := func(tag string) {
				t.Helper()
				if got, err := b.Tag(bg, "r", tag); err != nil || got.Digest != dg(tag) {
					t.Fatalf("b reads %s: %v %v", tag, got.Digest, err)
				}
			}
			for _, tag := range tags {
				read(tag)
			}
			must(t, a.PutTag(bg, "r", "elsewhere", tagOf(dg("elsewhere"), meta.OriginCache))) // the generation moves
			time.Sleep(ttl)
			gets := requests(t, regB, "get")
			if peer {
				b.PeerLinked("r", "elsewhere")
			}
			read("elsewhere") // finds the generation moved
			want := float64(1 + len(tags))
			polltest.Until(t, 10*time.Second, "the outdated tags read again", func() bool {
				return requests(t, regB, "get")-gets >= want
			})
			for _, tag := range tags {
				read(tag)
			}
			if n := requests(t, regB, "get") - gets; n != want {
				t.Fatalf("%v record reads for one new and %d outdated tags, want one each, none on the way of the reads that followed", n, len(tags))
			}
		})
	}
}

// A cached tag past the mutable TTL is not served when the tags
// generation cannot be read: the replica cannot tell whether it moved.
func testTagsGenerationUnreadable(t *testing.T, srv *azuritetest.Server) {
	const ttl = 300 * time.Millisecond
	ctr := azuretest.New(t, srv, "m")
	a := open(t, ctr, nil, azmeta.WithMutableTTL(ttl))
	down := &switchable{}
	b := open(t, azuretest.Open(t, srv, ctr.Name(), azure.WithTransport(down), azure.WithRetry(noRetry)), nil, azmeta.WithMutableTTL(ttl))
	d := dg("one")
	must(t, a.PutTag(bg, "r", "v1", tagOf(d, meta.OriginCache)))
	if got, err := b.Tag(bg, "r", "v1"); err != nil || got.Digest != d {
		t.Fatalf("b reads a's tag: %v %v", got.Digest, err)
	}
	down.off.Store(true)
	if got, err := b.Tag(bg, "r", "v1"); err != nil || got.Digest != d {
		t.Fatalf("within the TTL b serves its cached tag without asking: %v %v", got.Digest, err)
	}
	time.Sleep(ttl)
	if got, err := b.Tag(bg, "r", "v1"); err == nil {
		t.Fatalf("past the TTL with the storage unreachable b served %s, want an error", got.Digest)
	}
	down.off.Store(false)
	if got, err := b.Tag(bg, "r", "v1"); err != nil || got.Digest != d {
		t.Fatalf("the storage back: %v %v", got.Digest, err)
	}
}

// noRetry makes a request to an unreachable account fail at once.
var noRetry = policy.RetryOptions{MaxRetries: -1}

// switchable is a transport that fails every request while off.
type switchable struct{ off atomic.Bool }

func (s *switchable) Do(r *http.Request) (*http.Response, error) {
	if s.off.Load() {
		return nil, errors.New("switched off")
	}
	return http.DefaultClient.Do(r)
}

// A tag this replica wrote is read back in the background (one request):
// the next pull through this replica finds it cached and asks nothing.
// What a peer linked is read ahead too (testPeerLinked).
func testReadAhead(t *testing.T, srv *azuritetest.Server) {
	reg := prometheus.NewRegistry()
	x := open(t, azuretest.New(t, srv, "m"), reg, azmeta.WithMutableTTL(time.Hour))
	own := dg("own")
	g := requests(t, reg, "get")
	must(t, x.PutManifest(bg, "r", own, meta.Manifest{MediaType: "m", Size: 1, Origin: meta.OriginCache}, "v1", tagOf(own, meta.OriginCache)))
	readAheadDone(t, reg, g+1, "the tag this replica wrote")
	if got, err := x.Tag(bg, "r", "v1"); err != nil || got.Digest != own {
		t.Fatalf("own tag: %v %v", got.Digest, err)
	}
	if n := requests(t, reg, "get") - g; n != 1 {
		t.Fatalf("the own tag, read ahead, then asked for: %v record reads, want 1", n)
	}
}

// readAheadDone waits until the index behind reg has sent want record
// reads, and fails if it sent more.
func readAheadDone(t *testing.T, reg *prometheus.Registry, want float64, what string) {
	t.Helper()
	polltest.Until(t, 10*time.Second, what+" read ahead", func() bool { return requests(t, reg, "get") >= want })
	if n := requests(t, reg, "get"); n != want {
		t.Fatalf("%s: %v record reads, want %v", what, n, want)
	}
}
