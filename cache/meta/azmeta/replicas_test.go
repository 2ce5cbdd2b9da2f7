package azmeta_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// The tests of this file run two indexes on one container: two replicas,
// each with its own read cache and gate, sharing only what is in Azure.

var bg = context.Background()

func dg(s string) digest.Digest { return digest.FromString(s) }

func tagOf(d digest.Digest, o meta.Origin) meta.Tag {
	return meta.Tag{Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 2, FetchedAt: time.Unix(1, 0).UTC(), Origin: o}
}

// pair opens two replicas on one new container.
func pair(t *testing.T, srv *azuritetest.Server, opts ...azmeta.Option) (a, b *azmeta.Index, regB *prometheus.Registry) {
	t.Helper()
	ctr := azuretest.New(t, srv, "m")
	regB = prometheus.NewRegistry()
	return open(t, ctr, nil, opts...), open(t, azuretest.Open(t, srv, ctr.Name()), regB, opts...), regB
}

// A replica sees another's tag move within the short TTL, and its blob
// links and manifests at once; a link removed elsewhere stays visible here
// for the long TTL, except to a read that skips the cache.
func testSeeEachOther(t *testing.T, srv *azuritetest.Server) {
	const ttl = time.Second
	a, b, _ := pair(t, srv, azmeta.WithMutableTTL(ttl))
	d1, d2 := dg("one"), dg("two")
	must(t, a.PutTag(bg, "r", "v1", tagOf(d1, meta.OriginCache)))
	cached := time.Now()
	if got, err := b.Tag(bg, "r", "v1"); err != nil || got.Digest != d1 {
		t.Fatalf("b reads a's tag: %v %v", got.Digest, err)
	}
	must(t, a.PutTag(bg, "r", "v1", tagOf(d2, meta.OriginCache)))
	if got, err := b.Tag(bg, "r", "v1"); err != nil {
		t.Fatal(err)
	} else if got.Digest != d1 && time.Since(cached) < ttl/2 {
		t.Fatalf("b did not serve its cached tag within the TTL: %s", got.Digest)
	}
	time.Sleep(ttl)
	if got, err := b.Tag(bg, "r", "v1"); err != nil || got.Digest != d2 {
		t.Fatalf("b after the TTL: %v %v, want the moved tag", got.Digest, err)
	}
	if repos, _, err := b.Repos(bg, "", 0); err != nil || len(repos) != 1 || repos[0] != "r" {
		t.Fatalf("b's catalog: %v %v", repos, err)
	}

	layer := dg("layer")
	must(t, a.LinkBlob(bg, "r", layer, meta.Blob{Size: 5, Origin: meta.OriginCache, Added: time.Unix(2, 0).UTC()}))
	must(t, a.PutManifest(bg, "r", d2, meta.Manifest{MediaType: "m", Size: 2, Refs: []digest.Digest{layer}, Origin: meta.OriginCache}, "", meta.Tag{}))
	if _, err := b.Blob(bg, "r", layer); err != nil {
		t.Fatalf("b reads a's blob link: %v", err)
	}
	if m, err := b.Manifest(bg, "r", d2); err != nil || len(m.Refs) != 1 {
		t.Fatalf("b reads a's manifest: %+v %v", m, err)
	}
	must(t, a.UnlinkBlob(bg, "r", layer))
	if _, err := b.Blob(bg, "r", layer); err != nil {
		t.Fatalf("b's cached link (long TTL) went at once: %v", err)
	}
	if _, err := b.Blob(azmeta.WithoutCache(bg), "r", layer); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a read skipping b's cache: %v, want NotFound", err)
	}
	if _, err := a.Blob(bg, "r", layer); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a sees its own unlink: %v", err)
	}
}

// Both replicas write tags, manifests and blob links at once, to shared
// keys too: nothing is lost, and both read the same result.
func testConcurrentReplicas(t *testing.T, srv *azuritetest.Server) {
	a, b, _ := pair(t, srv, azmeta.WithMutableTTL(0), azmeta.WithImmutableTTL(0))
	const each = 20
	var g errgroup.Group
	for i, x := range []*azmeta.Index{a, b} {
		o := []meta.Origin{meta.OriginCache, meta.OriginPush}[i]
		g.Go(func() error {
			for j := range each {
				d := dg(fmt.Sprintf("%d/%d", i, j))
				if err := errors.Join(
					x.LinkBlob(bg, "shared", d, meta.Blob{Size: int64(j), Origin: o}),
					x.PutManifest(bg, "shared", d, meta.Manifest{MediaType: "m", Size: 1, Origin: o}, fmt.Sprintf("r%d-%02d", i, j), tagOf(d, o)),
					x.PutTag(bg, "shared", "latest", tagOf(d, o)),
				); err != nil {
					return err
				}
			}
			return nil
		})
	}
	must(t, g.Wait())
	for _, x := range []*azmeta.Index{a, b} {
		n := 0
		must(t, x.EachBlob(bg, "shared", func(meta.BlobLink) error { n++; return nil }))
		tags, _, err := x.Tags(bg, "shared", "", 0)
		if err != nil || n != 2*each || len(tags) != 2*each+1 {
			t.Fatalf("%d blob links and %d tags (%v), want %d and %d", n, len(tags), err, 2*each, 2*each+1)
		}
		latest, err := x.Tag(bg, "shared", "latest")
		if _, merr := x.Manifest(bg, "shared", latest.Digest); err != nil || merr != nil {
			t.Fatalf("latest points at %s (%v), which is not linked (%v)", latest.Digest, err, merr)
		}
		if r, err := x.Repo(bg, "shared"); err != nil || r.Origin != meta.OriginPush {
			t.Fatalf("a repository one replica pushed to: %+v %v", r, err)
		}
	}
}

// While replica a holds Exclusive, b's link waits (it is neither committed
// nor acknowledged), and it lands once the section ends.
func testExclusiveAcross(t *testing.T, srv *azuritetest.Server) {
	a, b, regB := pair(t, srv)
	d := dg("held back")
	linked := make(chan error, 1)
	err := a.Exclusive(bg, func(ctx context.Context) error {
		go func() { linked <- b.LinkBlob(bg, "r", d, meta.Blob{Size: 1, Origin: meta.OriginPush}) }()
		deadline := time.Now().Add(10 * time.Second)
		for promtest.Sum(t, regB, "airlock_meta_gate_waits_total") == 0 {
			select {
			case err := <-linked:
				return fmt.Errorf("b's LinkBlob returned (%v) while a holds the section", err)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return errors.New("b's LinkBlob never waited on the gate")
			}
		}
		select {
		case err := <-linked:
			return fmt.Errorf("b's LinkBlob returned (%v) while a holds the section", err)
		case <-time.After(4 * testSettle):
		}
		if _, err := a.Blob(ctx, "r", d); !errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("b's link was committed inside a's section: %v", err)
		}
		return nil
	})
	must(t, err)
	select {
	case err := <-linked:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("b's LinkBlob still waits after a's section ended")
	}
	if _, err := a.Blob(azmeta.WithoutCache(bg), "r", d); err != nil {
		t.Fatalf("b's held-back link is missing: %v", err)
	}
}

// slowPuts delays the writes of blob links while armed, and says when one
// arrives: a replica whose commit is slow.
type slowPuts struct {
	delay   atomic.Int64 // nanoseconds; 0: off
	arrived chan struct{}
}

func (s *slowPuts) Do(r *http.Request) (*http.Response, error) {
	if d := time.Duration(s.delay.Load()); d > 0 && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/meta/b/") {
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return http.DefaultClient.Do(r)
}

// A link whose gate read came before another replica's Exclusive section
// began: if it commits within the settle time, the section's walk sees it
// and the write succeeds; if it commits later, the walk may miss it, and
// the write fails with ErrLinkRaced. Never does a write succeed that a
// walk of a section begun before it returned missed.
func testLinkStraddling(t *testing.T, srv *azuritetest.Server) {
	for _, c := range []struct {
		name          string
		settle, delay time.Duration
		seen          bool
	}{
		{"CommitWithinSettle", 2 * time.Second, 100 * time.Millisecond, true},
		{"CommitAfterSettle", 300 * time.Millisecond, 1500 * time.Millisecond, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctr := azuretest.New(t, srv, "m")
			slow := &slowPuts{arrived: make(chan struct{}, 1)}
			a := open(t, ctr, nil, azmeta.WithSettle(c.settle))
			b := open(t, azuretest.Open(t, srv, ctr.Name(), azure.WithTransport(slow)), nil, azmeta.WithSettle(c.settle))
			d := dg(c.name)
			slow.delay.Store(int64(c.delay))
			linked := make(chan error, 1)
			go func() { linked <- b.LinkBlob(bg, "r", d, meta.Blob{Size: 1, Origin: meta.OriginPush}) }()
			<-slow.arrived // b read the gate; its link is on the way
			seen := false
			must(t, a.Exclusive(bg, func(ctx context.Context) error {
				return a.EachBlob(ctx, "r", func(l meta.BlobLink) error {
					seen = seen || l.Digest == d
					return nil
				})
			}))
			err := <-linked
			if seen != c.seen {
				t.Fatalf("the section's walk saw the link: %v, want %v", seen, c.seen)
			}
			if c.seen && err != nil {
				t.Fatalf("a link committed within the settle time failed: %v", err)
			}
			if !c.seen && !errors.Is(err, azmeta.ErrLinkRaced) {
				t.Fatalf("a link the section's walk missed returned %v, want ErrLinkRaced", err)
			}
		})
	}
}

// Exclusive sections of two replicas never overlap.
func testExclusiveOneAtATime(t *testing.T, srv *azuritetest.Server) {
	a, b, _ := pair(t, srv)
	var inside atomic.Int32
	var g errgroup.Group
	for _, x := range []*azmeta.Index{a, b, a, b, a, b} {
		g.Go(func() error {
			return x.Exclusive(bg, func(context.Context) error {
				if n := inside.Add(1); n != 1 {
					return fmt.Errorf("%d sections at once", n)
				}
				time.Sleep(50 * time.Millisecond)
				inside.Add(-1)
				return nil
			})
		})
	}
	must(t, g.Wait())
}

// A holder that died holding the gate stops holding back links once its
// lease ends (here broken rather than waited out: the same lease state).
func testDeadHolder(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	b := open(t, ctr, nil)
	must(t, b.Exclusive(bg, func(context.Context) error { return nil })) // creates the gate record
	if _, err := ctr.AcquireLease(bg, "meta/exclusive", azure.MinLease); err != nil {
		t.Fatal(err)
	}
	linked := make(chan error, 1)
	go func() { linked <- b.LinkBlob(bg, "r", dg("x"), meta.Blob{Size: 1, Origin: meta.OriginCache}) }()
	select {
	case err := <-linked:
		t.Fatalf("LinkBlob returned (%v) while a holder holds the gate", err)
	case <-time.After(4 * testSettle):
	}
	if _, err := ctr.BreakLease(bg, "meta/exclusive", 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-linked:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("LinkBlob still waits after the holder's lease ended")
	}
}

// A section whose lease is lost (broken by another) has fn's context
// cancelled and returns an error wrapping azure.ErrLeaseLost.
func testLeaseLost(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	a := open(t, ctr, nil, azmeta.WithHolder("replica-a"))
	err := a.Exclusive(bg, func(ctx context.Context) error {
		if rec, _, err := ctr.Get(ctx, "meta/exclusive"); err != nil || !strings.Contains(string(rec), `"holder":"replica-a"`) {
			return fmt.Errorf("the gate record names %s (%v), want the holder", rec, err)
		}
		if _, err := ctr.BreakLease(bg, "meta/exclusive", 0); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return errors.New("fn's context outlived the lease")
		}
	})
	if !errors.Is(err, azure.ErrLeaseLost) {
		t.Fatalf("Exclusive after losing its lease: %v, want ErrLeaseLost", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
