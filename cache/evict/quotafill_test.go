package evict_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/upstream/upstreamtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sync/errgroup"
)

// heldStore records the most bytes the store ever held: committed blobs
// plus blobs being written (their announced size from the start, as a
// store that preallocates holds them, or what was written if more).
type heldStore struct {
	evict.Store
	mu        sync.Mutex
	committed map[digest.Digest]int64
	writing   int64
	held, max int64
}

func newHeldStore(s evict.Store) *heldStore {
	return &heldStore{Store: s, committed: map[digest.Digest]int64{}}
}

func (s *heldStore) add(n int64) {
	s.held += n
	s.max = max(s.max, s.held)
}

func (s *heldStore) Max() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

func (s *heldStore) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	w, err := s.Store.Ingest(ctx, d, size)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	n := max(size, 0)
	s.writing += n
	s.add(n)
	s.mu.Unlock()
	return &heldIngest{Ingest: w, s: s, d: d, n: n}, nil
}

func (s *heldStore) Delete(ctx context.Context, d digest.Digest) error {
	err := s.Store.Delete(ctx, d)
	if err == nil {
		s.mu.Lock()
		s.add(-s.committed[d])
		delete(s.committed, d)
		s.mu.Unlock()
	}
	return err
}

type heldIngest struct {
	content.Ingest
	s    *heldStore
	d    digest.Digest
	n    int64 // bytes counted as being written
	done bool
}

func (w *heldIngest) Write(p []byte) (int, error) {
	if more := w.Written() + int64(len(p)) - w.n; more > 0 && !w.done {
		w.s.mu.Lock()
		w.n += more
		w.s.writing += more
		w.s.add(more)
		w.s.mu.Unlock()
	}
	return w.Ingest.Write(p)
}

func (w *heldIngest) Commit(ctx context.Context) (content.Info, error) {
	info, err := w.Ingest.Commit(ctx)
	if err == nil {
		w.s.mu.Lock()
		w.s.writing -= w.n
		w.s.add(-w.n)
		if _, ok := w.s.committed[w.d]; !ok {
			w.s.committed[w.d] = info.Size
			w.s.add(info.Size)
		}
		w.done = true
		w.s.mu.Unlock()
	}
	return info, err
}

func (w *heldIngest) Close() error {
	w.s.mu.Lock()
	if !w.done {
		w.s.writing -= w.n
		w.s.add(-w.n)
		w.done = true
	}
	w.s.mu.Unlock()
	return w.Ingest.Close()
}

// IngestPending counts a push's bytes as they are written.
func (s *heldStore) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	p, err := s.Store.(content.PendingIngester).IngestPending(ctx, alg)
	if err != nil {
		return nil, err
	}
	return &heldPending{Pending: p, s: s}, nil
}

type heldPending struct {
	content.Pending
	s *heldStore
	n int64
}

func (w *heldPending) Write(p []byte) (int, error) {
	n, err := w.Pending.Write(p)
	w.s.mu.Lock()
	w.n += int64(n)
	w.s.add(int64(n))
	w.s.mu.Unlock()
	return n, err
}

func (w *heldPending) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	info, err := w.Pending.Commit(ctx, d)
	if err == nil {
		w.s.mu.Lock()
		w.s.add(-w.n)
		w.n = 0
		if _, ok := w.s.committed[d]; !ok {
			w.s.committed[d] = info.Size
			w.s.add(info.Size)
		}
		w.s.mu.Unlock()
	}
	return info, err
}

func (w *heldPending) Close() error {
	w.s.mu.Lock()
	w.s.add(-w.n)
	w.n = 0
	w.s.mu.Unlock()
	return w.Pending.Close()
}

// Concurrent cold pulls past the quota never make the store hold more than
// maxBytes, not even for a moment: each fill reserves its size and evicts
// first. Every pull completes with the right bytes.
func TestQuotaHoldsDuringConcurrentFills(t *testing.T) {
	t.Parallel()
	const quota = 500_000
	var held *heldStore
	e := newEnvWith(t, evict.Policy{MaxBytes: quota}, func(s evict.Store) evict.Store {
		held = newHeldStore(s)
		return held
	})
	const images = 12
	for i := range images {
		e.up.PushImage(t, fmt.Sprintf("oss/q%d:1", i), 100_000, 1) // ~100 kB each: 1.2 MB in all
	}
	var g errgroup.Group
	for i := range images {
		g.Go(func() error {
			e.clock.Advance(time.Second)
			return e.pull(fmt.Sprintf("%soss/q%d", prefix, i), "1")
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if m := held.Max(); m > quota || m < quota/2 {
		t.Fatalf("the store held up to %d bytes; want at most the quota, %d (and the test to come near it)", m, quota)
	}
	if e.metric("airlock_evicted_bytes_total") == 0 {
		t.Fatal("nothing was evicted: the test did not go past the quota")
	}
	t.Logf("%d images of 100 kB pulled at once under a quota of %d: the store held at most %d bytes", images, quota, held.Max())
}

// pinFull makes pinned content fill a quota of quota bytes, less room.
func pinFull(t *testing.T, e *env, room int64) {
	t.Helper()
	e.up.PushImage(t, "oss/pinned:1", 300_000, 1)
	if err := e.pull(prefix+"oss/pinned", "1"); err != nil {
		t.Fatal(err)
	}
	if err := e.col.Pin(context.Background(), []string{prefix + "oss/pinned:1"}, "test"); err != nil {
		t.Fatal(err)
	}
	rep, err := e.col.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.col.SetPolicy(evict.Policy{MaxBytes: rep.After + room}); err != nil {
		t.Fatal(err)
	}
}

func layerOf(t *testing.T, img v1.Image) (digest.Digest, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(d.String()), b
}

// When pins fill the quota, a blob that does not fit is streamed to every
// client following it from one upstream GET, verified, and not kept: the
// store does not grow, a metric and a log line say so, and the image's
// small manifest and config, which fit, are kept.
func TestNoRoomPassesThrough(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.WarnLevel)
	var held *heldStore
	e := newEnvOpts(t, evict.Policy{}, envOpts{log: zap.New(core), wrap: func(s evict.Store) evict.Store {
		held = newHeldStore(s)
		return held
	}})
	pinFull(t, e, 50_000)
	quota := e.col.Used() + 50_000
	img := e.up.PushImage(t, "oss/big:1", 200_000, 1)
	if _, _, err := e.get("/v2/"+prefix+"oss/big/manifests/1", ""); err != nil {
		t.Fatal(err)
	}
	d, want := layerOf(t, img)
	resume := make(chan struct{})
	e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), PauseAfter: 64 << 10, Resume: resume, Times: 1})

	const clients = 5
	var started, wg sync.WaitGroup
	started.Add(clients)
	bodies := make(chan []byte, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := httpClient.Get(e.srv.URL + "/v2/" + prefix + "oss/big/blobs/" + d.String())
			if err != nil {
				started.Done()
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			first := make([]byte, 100)
			_, err = io.ReadFull(resp.Body, first)
			started.Done()
			rest, rerr := io.ReadAll(resp.Body)
			if err != nil || rerr != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("client: %d %v %v", resp.StatusCode, err, rerr)
			}
			bodies <- append(first, rest...)
		}()
	}
	started.Wait() // every client has its first bytes from the one fill
	close(resume)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if !bytes.Equal(b, want) {
			t.Fatalf("a client got %d bytes, not the blob", len(b))
		}
	}
	if n := e.up.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Fatalf("%d clients made %d upstream GETs, want 1", clients, n)
	}
	if _, err := e.store.Stat(context.Background(), d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("the blob passed through was kept: %v", err)
	}
	if m := held.Max(); m > quota {
		t.Fatalf("the store held %d bytes, over its quota of %d", m, quota)
	}
	if n, b := e.metric("airlock_fill_uncached_total"), e.metric("airlock_fill_uncached_bytes_total"); n != 1 || b != float64(len(want)) {
		t.Fatalf("uncached metrics: %v blobs, %v bytes; want 1 and %d", n, b, len(want))
	}
	if l := logs.FilterMessageSnippet("without keeping it").All(); len(l) != 1 || l[0].ContextMap()["digest"] != d.String() {
		t.Fatalf("log lines about the blob passed through: %v", l)
	}
	if !e.hasTag(prefix+"oss/big", "1") {
		t.Fatal("the manifest, which fits, was not kept")
	}
	// A push that does not fit is refused, saying why.
	resp, err := httpClient.Post(e.srv.URL+"/v2/team/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "DENIED") || !strings.Contains(string(body), "storage quota exceeded") {
		t.Fatalf("push over the quota: %d %s", resp.StatusCode, body)
	}
}
