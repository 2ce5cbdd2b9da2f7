package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// 100 concurrent cold reads of one blob make one upstream GET, and every
// reader receives bytes while the fill is held half way.
func TestSingleFlightBlob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d, want := layer(t, e.up, upRepo+":3.10", 1<<20)
		// Hold the upstream body after 256 KiB until every reader has bytes.
		resume := make(chan struct{})
		e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 256 << 10, Resume: resume})

		const clients = 100
		var started, finished sync.WaitGroup
		started.Add(clients)
		finished.Add(clients)
		errs := make(chan error, clients)
		for range clients {
			go func() {
				defer finished.Done()
				b, err := e.eng.Blob(context.Background(), repo, d, false)
				if err != nil {
					started.Done()
					errs <- err
					return
				}
				defer b.Content.Close()
				first := make([]byte, 1024)
				if _, err := io.ReadFull(b.Content, first); err != nil {
					started.Done()
					errs <- err
					return
				}
				started.Done() // this reader streams while the fill is held
				rest, err := readAll(b)
				if err == nil && b.Wait != nil {
					err = b.Wait(context.Background())
				}
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(append(first, rest...), want) {
					errs <- errors.New("body differs")
				}
			}()
		}
		waitOrFail(t, &started, 20*time.Second, "readers to receive their first bytes while the fill is held")
		close(resume)
		waitOrFail(t, &finished, 20*time.Second, "readers to finish")
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := e.up.Count("GET", "/blobs/"+d.String()); n != 1 {
			t.Fatalf("%d concurrent cold reads made %d upstream GETs, want 1", clients, n)
		}
		if n := e.up.Count("HEAD", "/blobs/"); n != 0 {
			t.Fatalf("waiters on a fill from the same repository made %d upstream HEADs, want 0", n)
		}
		if got := e.metric("airlock_cache_coalesced_total", "kind", "blob"); got != clients-1 {
			t.Fatalf("coalesced waiters metric %v, want %d", got, clients-1)
		}
	})
}

// 100 concurrent cold pulls of a tag make one upstream manifest GET.
func TestSingleFlightTag(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		e.up.PushImage(t, upRepo+":3.10", 64, 1)
		e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/manifests/3.10", Delay: 200 * time.Millisecond, Times: 1})
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.eng.Manifest(context.Background(), repo, "3.10", false); err != nil {
					t.Errorf("tag pull: %v", err)
				}
			}()
		}
		wg.Wait()
		if n := e.up.Count("GET", "/manifests/3.10"); n != 1 {
			t.Fatalf("100 concurrent cold tag pulls made %d upstream GETs, want 1", n)
		}
	})
}

// A reader that gives up mid-body does not abort the fill another reader
// waits on.
func TestClientHangupDoesNotAbortFill(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		f := upstreamtest.NewFake()
		img := f.PutImage(upRepo, "3.10", 1<<20, "pause")
		e := newEnv(t, s, envOpt{fake: f})
		release := f.Hold(img.Layer, 64<<10)

		ctx, cancel := context.WithCancel(context.Background())
		first, err := e.eng.Blob(ctx, repo, img.Layer, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(first.Content, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		// A second reader joins, then the first hangs up mid-body.
		second := make(chan []byte, 1)
		go func() {
			b, err := e.read(context.Background(), repo, img.Layer)
			if err != nil {
				t.Errorf("second reader: %v", err)
			}
			second <- b
		}()
		synctest.Wait()
		cancel()
		first.Content.Close()
		release()
		if b := <-second; !bytes.Equal(b, img.Bytes) {
			t.Fatalf("the waiting reader got %d bytes, want the whole %d", len(b), len(img.Bytes))
		}
		if n := f.Count("blob GET"); n != 1 {
			t.Fatalf("upstream GETs %d, want 1", n)
		}
		// And the blob is cached.
		f.Reset()
		if b, err := e.read(context.Background(), repo, img.Layer); err != nil || !bytes.Equal(b, img.Bytes) || f.Total() != 0 {
			t.Fatalf("blob not cached after the fill: %v, %d upstream calls", err, f.Total())
		}
	})
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
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d, want := layer(t, e.up, upRepo+":3.10", 50_000)
		if b, err := e.read(context.Background(), repo, d); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("first pull: %v", err)
		}
		e.up.Reset()
		// The test upstream shares blobs across repositories; make oss/other
		// lack this one, as a real registry's repository could.
		e.up.AddFault(upstreamtest.Fault{PathContains: "/oss/other/blobs/", Status: 404})
		if _, err := e.eng.Blob(context.Background(), "aks-managed-repository/oss/other", d, false); !errors.Is(err, cache.ErrBlobUnknown) {
			t.Fatalf("a repository the upstream does not have the blob in: %v, want ErrBlobUnknown", err)
		}
		e.up.Reset()
		if b, err := e.read(context.Background(), "aks-managed-repository/oss/kubernetes/kube-proxy", d); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("shared layer through the second repository: %v", err)
		}
		if h, g := e.up.Count("HEAD", "/blobs/"), e.up.Count("GET", "/blobs/"); h != 1 || g != 0 {
			t.Fatalf("cross-repository reuse: %d HEAD, %d GET; want 1, 0", h, g)
		}
	})
}

// Many readers of a second repository arriving while the blob fills for a
// first one cost one confirming HEAD in all, not one each.
func TestCrossRepositoryStormOneHead(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		f := upstreamtest.NewFake()
		img := f.PutImage(upRepo, "3.10", 1<<20, "pause")
		f.PutBlob("oss/kubernetes/kube-proxy", img.Bytes)
		e := newEnv(t, s, envOpt{fake: f})
		releaseBody := f.Hold(img.Layer, 128<<10)
		first, err := e.eng.Blob(context.Background(), repo, img.Layer, false)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Content.Close()
		io.ReadFull(first.Content, make([]byte, 1024)) // the fill is running and held
		releaseHead := f.Gate("blob HEAD")
		var wg sync.WaitGroup
		var mu sync.Mutex
		bad := 0
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := e.read(context.Background(), "aks-managed-repository/oss/kubernetes/kube-proxy", img.Layer)
				if err != nil || !bytes.Equal(b, img.Bytes) {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}()
		}
		synctest.Wait() // every reader waits: one on the HEAD, the rest on it
		releaseHead()
		synctest.Wait() // every reader follows the held fill
		releaseBody()
		wg.Wait()
		if bad != 0 {
			t.Fatalf("%d readers of the second repository failed", bad)
		}
		if h, g := f.Count("blob HEAD"), f.Count("blob GET"); h != 1 || g != 1 {
			t.Fatalf("upstream: %d HEAD, %d GET; want 1, 1", h, g)
		}
	})
}

// gatedStat holds every Stat of the store until release is closed, and
// counts them.
type gatedStat struct {
	content.Store
	release chan struct{}
	n       atomic.Int64
}

func (s *gatedStat) Stat(ctx context.Context, d digest.Digest) (content.Info, error) {
	s.n.Add(1)
	<-s.release
	return s.Store.Stat(ctx, d)
}

// Cold reads of one blob that miss the index together ask the store once
// before the fill, however many they are: on Azure each Stat is a request
// that queues in front of the fill's own. One upstream GET serves them.
func TestColdReadsShareOneStat(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		f := upstreamtest.NewFake()
		want := bytes.Repeat([]byte("stat once "), 4<<10)
		d := f.PutBlob(upRepo, want)
		gated := &gatedStat{Store: s.content, release: make(chan struct{})}
		s.content = gated
		e := newEnv(t, s, envOpt{fake: f})
		const clients = 20
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for range clients {
			wg.Go(func() {
				b, err := e.read(context.Background(), repo, d)
				if err == nil && !bytes.Equal(b, want) {
					err = errors.New("body differs")
				}
				errs <- err
			})
		}
		synctest.Wait() // every read waits: one on the Stat, the rest on it
		if n := gated.n.Load(); n != 1 {
			t.Fatalf("%d cold reads sent %d store Stats at once, want 1", clients, n)
		}
		close(gated.release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := f.Count("blob GET"); n != 1 {
			t.Fatalf("%d upstream GETs, want 1", n)
		}
	})
}
