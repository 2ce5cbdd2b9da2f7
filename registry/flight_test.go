package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/upstreamtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func layerOf(t *testing.T, img v1.Image) (v1.Hash, []byte) {
	t.Helper()
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	b, _ := io.ReadAll(rc)
	rc.Close()
	return d, b
}

// get starts a GET and returns the response without reading the body.
func (e *env) get(ctx context.Context, path string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	return e.client.Do(req)
}

func TestSingleFlightBlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 1<<20, 1)
	d, want := layerOf(t, img)
	// Hold the upstream body after 256 KiB until every client has bytes.
	resume := make(chan struct{})
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 256 << 10, Resume: resume})
	path := "/v2/" + repo + "/blobs/" + d.String() + "?ns=mcr.microsoft.com"

	const clients = 100
	var started, finished sync.WaitGroup
	started.Add(clients)
	finished.Add(clients)
	errs := make(chan error, clients)
	for range clients {
		go func() {
			defer finished.Done()
			resp, err := e.get(context.Background(), path)
			if err != nil {
				started.Done()
				errs <- err
				return
			}
			defer resp.Body.Close()
			first := make([]byte, 1024)
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				started.Done()
				errs <- err
				return
			}
			started.Done() // this client streams while the fill is held
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(append(first, rest...), want) {
				errs <- errors.New("body differs")
			}
		}()
	}
	waitOrFail(t, &started, 20*time.Second, "clients to receive their first bytes while the fill is held")
	close(resume)
	waitOrFail(t, &finished, 20*time.Second, "clients to finish")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.up.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Fatalf("%d concurrent cold GETs made %d upstream GETs, want 1", clients, n)
	}
	if n := e.up.Count("HEAD", "/blobs/"); n != 0 {
		t.Fatalf("waiters on a fill from the same repository made %d upstream HEADs, want 0", n)
	}
	if got := e.metric("airlock_cache_coalesced_total", "kind", "blob"); got != clients-1 {
		t.Fatalf("coalesced waiters metric %v, want %d", got, clients-1)
	}
}

func TestSingleFlightTag(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/manifests/3.10", Delay: 200 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.get(context.Background(), "/v2/"+repo+"/manifests/3.10")
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("tag pull: %v %v", err, resp)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if n := e.up.Count("GET", "/manifests/3.10"); n != 1 {
		t.Fatalf("100 concurrent cold tag pulls made %d upstream GETs, want 1", n)
	}
}

func TestClientHangupDoesNotAbortFill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 1<<20, 1)
	d, want := layerOf(t, img)
	resume := make(chan struct{})
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 64 << 10, Resume: resume, Times: 1})
	path := "/v2/" + repo + "/blobs/" + d.String()

	ctx, cancel := context.WithCancel(context.Background())
	resp, err := e.get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 1024))
	// A second client joins, then the first hangs up mid-body.
	second := make(chan []byte, 1)
	go func() {
		r, err := e.get(context.Background(), path)
		if err != nil {
			second <- nil
			return
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		second <- b
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	resp.Body.Close()
	close(resume)
	select {
	case b := <-second:
		if !bytes.Equal(b, want) {
			t.Fatalf("the waiting client got %d bytes, want the whole %d", len(b), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("second client never finished")
	}
	if n := e.up.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Fatalf("upstream GETs %d, want 1", n)
	}
	// And the blob is cached.
	e.up.Reset()
	if _, b := e.do("GET", path); !bytes.Equal(b, want) || e.up.Total() != 0 {
		t.Fatalf("blob not cached after the fill")
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// A blob cached for one repository is shared with another only after the
// upstream confirms (one HEAD) that the other repository has it too: no
// second GET, and no serving of another repository's content unasked.
func TestCrossRepositoryBlobReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 50_000, 1)
	d, want := layerOf(t, img)
	if _, b := e.do("GET", "/v2/"+repo+"/blobs/"+d.String()); !bytes.Equal(b, want) {
		t.Fatal("first pull")
	}
	e.up.Reset()
	// The test upstream shares blobs across repositories; make oss/other
	// lack this one, as a real registry's repository could.
	e.up.AddFault(upstreamtest.Fault{PathContains: "/oss/other/blobs/", Status: 404})
	if resp, _ := e.do("GET", "/v2/aks-managed-repository/oss/other/blobs/"+d.String()); resp.StatusCode != 404 {
		t.Fatalf("a repository the upstream does not have the blob in got %d, want 404", resp.StatusCode)
	}
	e.up.Reset()
	if _, b := e.do("GET", "/v2/aks-managed-repository/oss/kubernetes/kube-proxy/blobs/"+d.String()); !bytes.Equal(b, want) {
		t.Fatal("shared layer through the second repository")
	}
	if h, g := e.up.Count("HEAD", "/blobs/"), e.up.Count("GET", "/blobs/"); h != 1 || g != 0 {
		t.Fatalf("cross-repository reuse: %d HEAD, %d GET; want 1, 0", h, g)
	}
}

// Many clients of a second repository arriving while the blob fills for a
// first one cost one confirming HEAD in all, not one each.
func TestCrossRepositoryStormOneHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 1<<20, 1)
	d, want := layerOf(t, img)
	resume := make(chan struct{})
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 128 << 10, Resume: resume})
	first, err := e.get(context.Background(), "/v2/"+repo+"/blobs/"+d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	io.ReadFull(first.Body, make([]byte, 1024)) // the fill is running and held
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.get(context.Background(), "/v2/aks-managed-repository/oss/kubernetes/kube-proxy/blobs/"+d.String())
			if err != nil {
				mu.Lock()
				bad++
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(b, want) {
				mu.Lock()
				bad++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(resume)
	waitOrFail(t, &wg, 20*time.Second, "second-repository clients")
	if bad != 0 {
		t.Fatalf("%d clients of the second repository failed", bad)
	}
	if h, g := e.up.Count("HEAD", "/blobs/"+d.String()), e.up.Count("GET", "/blobs/"+d.String()); h != 1 || g != 1 {
		t.Fatalf("upstream: %d HEAD, %d GET; want 1, 1", h, g)
	}
}
