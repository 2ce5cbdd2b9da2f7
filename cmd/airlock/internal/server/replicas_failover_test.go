package server

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// fetch GETs a blob through base and reports an error unless every byte
// arrived and verifies.
func fetch(base, repo string, d digest.Digest) error {
	resp, err := http.Get(base + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return fmt.Errorf("%s: broken after %d bytes: %w", base, len(b), err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: %d %s", base, resp.StatusCode, b)
	case digest.FromBytes(b) != d:
		return fmt.Errorf("%s: a complete body of %d bytes that does not verify", base, len(b))
	}
	return nil
}

// fetchAll fetches a blob through each base at once.
func fetchAll(t *testing.T, repo string, d digest.Digest, bases ...string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, b := range bases {
		wg.Go(func() {
			if err := fetch(b, repo, d); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// Two replicas whose static views differ both believe they own a blob
// (replica 1 lists only itself): both claim its fill record, one fills,
// the other relays from it. One upstream GET.
func TestReplicasDisagreeingViews(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 2)
	s.start(0, s.config(0, s.peers))
	s.start(1, s.config(1, s.peers[1:]))
	polltest.Until(t, 30*time.Second, "replica 0 sees both", func() bool { return len(s.rs[0].srv.node.Members.Live()) == 2 })
	repo, d := s.blobOwnedBy(0, 2<<20, 0, 1)
	if o, self := (&peers{node: s.rs[1].srv.node}).Owner(d.String()); !self {
		t.Fatalf("replica 1 thinks %s owns the blob", o)
	}
	resume := make(chan struct{})
	s.up.AddFault(upstreamtest.Fault{Method: http.MethodGet, PathContains: "/blobs/" + d.String(), Times: 1, PauseAfter: 512 << 10, Resume: resume})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if err := fetch(s.url(i), repo, d); err != nil {
				t.Error(err)
			}
		})
	}
	polltest.Until(t, 30*time.Second, "one replica fills and the other relays from it", func() bool {
		owners := s.metric(0, "airlock_cluster_fills_total", "role", "owner") + s.metric(1, "airlock_cluster_fills_total", "role", "owner")
		relays := s.metric(0, "airlock_cluster_fills_total", "role", "relay") + s.metric(1, "airlock_cluster_fills_total", "role", "relay")
		return owners == 1 && relays == 1
	})
	close(resume)
	wg.Wait()
	if n := s.up.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Fatalf("%d upstream GETs, want 1", n)
	}
}

// Fencing: the owner stalls mid-fill, cut off from the store, while
// another replica takes the fill over and publishes the blob. When the
// ex-owner wakes up and finishes its bytes, its claim is gone (its fence
// before publishing fails, or its renewal finds out first): it never
// writes the blob, and its client gets a broken transfer, never a body
// that was not verified.
func TestReplicasFencing(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1, 2)
	repo, d := s.blobOwnedBy(0, 4<<20, 0, 1, 2)
	resume := make(chan struct{})
	s.up.AddFault(upstreamtest.Fault{Method: http.MethodGet, PathContains: "/blobs/" + d.String(), Times: 1, PauseAfter: 1 << 20, Resume: resume})
	first := make(chan error, 1)
	go func() { first <- fetch(s.url(0), repo, d) }()
	polltest.Until(t, 30*time.Second, "the owner fills", func() bool {
		return s.metric(0, "airlock_cluster_fills_total", "role", "owner") == 1 && s.up.Count("GET", "/blobs/"+d.String()) == 1
	})

	s.rs[0].azure.blocked.Store(true) // the owner stalls, cut off from the store
	s.settle(1, 2)                    // the others find it not ready
	taker := make(chan error, 1)
	go func() { taker <- fetch(s.url(1), repo, d) }()
	polltest.Until(t, 30*time.Second, "another replica takes the fill over", func() bool {
		return s.metric(1, "airlock_cluster_takeovers_total")+s.metric(2, "airlock_cluster_takeovers_total") == 1
	})

	s.rs[0].azure.blocked.Store(false) // the ex-owner wakes up and finishes its bytes
	close(resume)
	for name, c := range map[string]chan error{"the ex-owner's": first, "the taker's": taker} {
		select {
		case err := <-c:
			if (err == nil) != (name == "the taker's") {
				t.Errorf("%s client: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s client still waits", name)
		}
	}
	if n := s.rs[0].azure.commits(d); n != 0 {
		t.Fatalf("the ex-owner wrote the blob %d times after losing its claim", n)
	}
	if n := s.rs[1].azure.commits(d) + s.rs[2].azure.commits(d); n != 1 {
		t.Fatalf("the taker wrote the blob %d times, want 1", n)
	}
	if n := s.metric(0, "airlock_cluster_lease_lost_total"); n != 1 {
		t.Fatalf("the ex-owner lost %v claims, want 1", n)
	}
	s.settle(0, 1, 2)
	if err := fetch(s.url(0), repo, d); err != nil {
		t.Fatalf("the blob through the ex-owner, after: %v", err)
	}
	if n := s.up.Count("GET", "/blobs/"+d.String()); n != 2 {
		t.Fatalf("%d upstream GETs, want 2 (the ex-owner's and the taker's)", n)
	}
}

// Replicas join and leave without the others restarting: each blob is
// still fetched once, owned by whoever is live.
func TestReplicasJoinLeave(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1)
	all := []string{s.url(0), s.url(1), s.url(2)}
	repo, d := s.blobOwnedBy(1, 64<<10, 0, 1)
	fetchAll(t, repo, d, all[:2]...)

	s.start(2, nil) // joins
	s.settle(0, 1, 2)
	repo2, d2 := s.blobOwnedBy(2, 64<<10, 0, 1, 2)
	fetchAll(t, repo2, d2, all...)
	if n := s.metric(2, "airlock_cluster_fills_total", "role", "owner"); n != 1 {
		t.Fatalf("the replica that joined filled %v blobs it owns, want 1", n)
	}

	s.rs[1].stop() // leaves
	s.settle(0, 2)
	repo3, d3 := s.blobOwnedBy(0, 64<<10, 0, 2)
	fetchAll(t, repo3, d3, all[0], all[2])
	for _, b := range []digest.Digest{d, d2, d3} {
		if n := s.up.Count("GET", "/blobs/"+b.String()); n != 1 {
			t.Errorf("blob %s: %d upstream GETs, want 1", b, n)
		}
	}
	if live := s.rs[0].srv.node.Members.Live(); !slices.Equal(live, []string{min(s.peers[0], s.peers[2]), max(s.peers[0], s.peers[2])}) {
		t.Fatalf("replica 0 sees %v", live)
	}
}
