package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// pull pulls repo:ref through base completely, checking every digest, and
// returns the manifest's digest.
func pull(t *testing.T, base, repo, ref string) digest.Digest {
	t.Helper()
	code, body, h := get(t, base+"/v2/"+repo+"/manifests/"+ref)
	if code != http.StatusOK {
		t.Fatalf("manifest %s:%s: %d %s", repo, ref, code, body)
	}
	md := digest.Digest(h.Get("Docker-Content-Digest"))
	if digest.FromBytes(body) != md {
		t.Fatalf("manifest %s:%s does not match its digest", repo, ref)
	}
	var m struct {
		Config struct{ Digest digest.Digest }
		Layers []struct{ Digest digest.Digest }
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]digest.Digest{m.Config.Digest}, layerDigests(m.Layers)...) {
		code, b, _ := get(t, base+"/v2/"+repo+"/blobs/"+d.String())
		if code != http.StatusOK || digest.FromBytes(b) != d {
			t.Fatalf("blob %s: %d, %d bytes that do not verify", d, code, len(b))
		}
	}
	return md
}

func layerDigests(ls []struct{ Digest digest.Digest }) []digest.Digest {
	out := make([]digest.Digest, len(ls))
	for i, l := range ls {
		out[i] = l.Digest
	}
	return out
}

// Shared truth: an image pulled through one replica is served by another
// that never saw it, without asking the upstream anything.
func TestReplicasSharedTruth(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1, 2)
	s.up.PushImage(t, "team/app:v1", 300<<10, 3)
	first := pull(t, s.url(0), localRepo+"team/app", "v1")
	if n := s.up.Count("GET", "/blobs/"); n != 4 {
		t.Fatalf("the first pull made %d upstream blob GETs, want 4 (config and 3 layers)", n)
	}
	s.up.Reset()
	if got := pull(t, s.url(2), localRepo+"team/app", "v1"); got != first {
		t.Fatalf("replica 2 served %s, replica 0 %s", got, first)
	}
	pull(t, s.url(2), localRepo+"team/app", first.String())
	if n := s.up.Total(); n != 0 {
		t.Fatalf("a replica that never saw the image made %d upstream requests: %v", n, s.up.Counts())
	}
}

// One upstream fill per blob for the whole cluster, and everyone streams:
// 100 cold GETs spread over three replicas make one upstream GET, and
// every client has bytes while the upstream body is held mid-way.
func TestReplicasOneFillPerBlob(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1, 2)
	const size = 4 << 20
	repo, d := s.blobOwnedBy(1, size, 0, 1, 2)
	resume := make(chan struct{})
	s.up.AddFault(upstreamtest.Fault{Method: http.MethodGet, PathContains: "/blobs/" + d.String(), Times: 1, PauseAfter: 1 << 20, Resume: resume})

	const clients = 100
	var wg sync.WaitGroup
	firstByte := make(chan int, clients)
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			resp, err := http.Get(s.url(c%3) + "/v2/" + repo + "/blobs/" + d.String())
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			one := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, one); err != nil || resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("client %d: %d %v", c, resp.StatusCode, err)
				return
			}
			firstByte <- c
			rest, err := io.ReadAll(resp.Body)
			if err != nil || digest.FromBytes(append(one, rest...)) != d {
				errs <- fmt.Errorf("client %d: %d bytes that do not verify, %v", c, len(rest)+1, err)
			}
		})
	}
	for range clients {
		select {
		case <-firstByte:
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("not every client had a first byte while the upstream body was held")
		}
	}
	close(resume)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.up.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Fatalf("%d upstream GETs of the blob, want 1", n)
	}
	if n := s.up.Count("HEAD", "/blobs/"+d.String()); n != 0 {
		t.Fatalf("%d upstream HEADs of the blob, want 0", n)
	}
	if owner, relays := s.metric(1, "airlock_cluster_fills_total", "role", "owner"), s.metric(0, "airlock_cluster_fills_total", "role", "relay")+s.metric(2, "airlock_cluster_fills_total", "role", "relay"); owner != 1 || relays != 2 {
		t.Fatalf("fills: owner %v on the owner, relay %v on the others; want 1 and 2", owner, relays)
	}
	// Asking the store whether the blob is committed: the owner's cold
	// requests share one question before the fill (a request arriving
	// between its answer and the fill's start may ask again) and the
	// claim asks once more; the others ask nothing before they relay.
	// Each question is a request to Azure, once per client before.
	stats := func(i int) float64 {
		return s.metric(i, "airlock_storage_requests_total", "area", "blobs", "method", http.MethodHead)
	}
	if owner, others := stats(1), stats(0)+stats(2); owner < 2 || owner > 6 || others != 0 {
		t.Fatalf("store Stats: %v on the owner (its %d clients), %v on the others; want 2 to 6 and 0", owner, (clients+1)/3, others)
	}
}

// A Range request on a replica that does not own a cold blob is served
// from its relay as soon as the bytes reach the range.
func TestReplicasRangeThroughNonOwner(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1, 2)
	repo, d := s.blobOwnedBy(2, 1<<20, 0, 1, 2)
	code, part, h := get(t, s.url(0)+"/v2/"+repo+"/blobs/"+d.String(), "Range", "bytes=1000-1999")
	if code != http.StatusPartialContent || len(part) != 1000 || !strings.HasPrefix(h.Get("Content-Range"), "bytes 1000-1999/") {
		t.Fatalf("range through a non-owner: %d, %d bytes, Content-Range %q", code, len(part), h.Get("Content-Range"))
	}
	code, whole, _ := get(t, s.url(1)+"/v2/"+repo+"/blobs/"+d.String())
	if code != http.StatusOK || digest.FromBytes(whole) != d || !bytes.Equal(whole[1000:2000], part) {
		t.Fatalf("the whole blob: %d, %d bytes", code, len(whole))
	}
	if n := s.up.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Fatalf("%d upstream GETs, want 1", n)
	}
}

// A tag pulled at once through every replica is one upstream manifest
// GET; once its TTL has passed, one HEAD for the whole cluster.
func TestReplicasTagOnce(t *testing.T) {
	t.Parallel()
	s := newReplicaSet(t, 3, 0, 1, 2)
	s.up.PushImage(t, "team/tagged:v1", 1<<10, 1)
	path := "/v2/" + localRepo + "team/tagged/manifests/v1"
	storm := func(method string) {
		t.Helper()
		var wg sync.WaitGroup
		for c := range 30 {
			wg.Go(func() {
				req, _ := http.NewRequest(method, s.url(c%3)+path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s through replica %d: %d", method, c%3, resp.StatusCode)
				}
			})
		}
		wg.Wait()
	}
	storm(http.MethodGet)
	if get, head := s.up.Count("GET", "/manifests/"), s.up.Count("HEAD", "/manifests/"); get != 1 || head != 0 {
		t.Fatalf("a cold tag through 3 replicas: %d upstream GETs and %d HEADs, want 1 and 0", get, head)
	}
	s.clock.advance(time.Hour) // past the default tag TTL
	storm(http.MethodGet)
	storm(http.MethodHead)
	if get, head := s.up.Count("GET", "/manifests/"), s.up.Count("HEAD", "/manifests/"); get != 1 || head != 1 {
		t.Fatalf("a stale tag through 3 replicas: %d upstream GETs and %d HEADs in all, want 1 and 1", get, head)
	}
}
