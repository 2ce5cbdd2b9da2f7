package azstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/contenttest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// recorder counts the requests a store sends, by kind. With stall set,
// the body of a GET stops after 1000 bytes until the request is cancelled.
type recorder struct {
	stall atomic.Bool
	hold  func(*http.Request) // if set, called before a request is sent; set it before the requests
	mu    sync.Mutex
	reqs  []string // "GET", "HEAD", "PUT block", "PUT blocklist", "PUT" (Put Blob) ...
	hdrs  []http.Header
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	kind := req.Method
	if c := req.URL.Query().Get("comp"); c != "" {
		kind += " " + c
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, kind)
	r.hdrs = append(r.hdrs, req.Header.Clone())
	r.mu.Unlock()
	if r.hold != nil {
		r.hold(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil && req.Method == http.MethodGet && r.stall.Load() {
		resp.Body = &stallingBody{ReadCloser: resp.Body, ctx: req.Context(), left: 1000}
	}
	return resp, err
}

// stallingBody passes left bytes, then blocks until ctx ends.
type stallingBody struct {
	io.ReadCloser
	ctx  context.Context
	left int
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	n, err := b.ReadCloser.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

// count is how many requests of kind were sent, and the headers of the last.
func (r *recorder) count(kind string) (int, http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, last := 0, http.Header(nil)
	for i, k := range r.reqs {
		if k == kind {
			n, last = n+1, r.hdrs[i]
		}
	}
	return n, last
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.reqs, r.hdrs = nil, nil
	r.mu.Unlock()
}

// env is one Azurite shared by a test's subtests.
type env struct{ srv *azuritetest.Server }

func newEnv(t *testing.T) *env { return &env{srv: azuritetest.Start(t)} }

// container opens a new container; each store of it is a replica.
func (e *env) container(t testing.TB, rec *recorder) *azure.Container {
	t.Helper()
	return e.open(t, azuritetest.ContainerName("t"), rec)
}

// open opens the container name with its own client (another replica's).
func (e *env) open(t testing.TB, name string, rec *recorder) *azure.Container {
	t.Helper()
	var opts []azure.Option
	if rec != nil {
		opts = append(opts, azure.WithTransport(rec))
	}
	return azuretest.Open(t, e.srv, name, opts...)
}

func newStore(t testing.TB, c *azure.Container, opts ...Option) *Store {
	t.Helper()
	s, err := New(c, t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testBlob(n int, seed byte) ([]byte, digest.Digest) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13+i/251) ^ seed
	}
	return b, digest.FromBytes(b)
}

func TestAzurite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The shared suite, with blobs going up in one request and, with
	// small blocks, as staged blocks (several writers of one blob at once
	// in ConcurrentCommit).
	t.Run("Suite", func(t *testing.T) {
		t.Parallel()
		contenttest.Run(t, func(t *testing.T) content.Store { return newStore(t, e.container(t, nil)) })
	})
	t.Run("SuiteBlocks", func(t *testing.T) {
		t.Parallel()
		contenttest.Run(t, func(t *testing.T) content.Store {
			return newStore(t, e.container(t, nil), WithBlockSize(16<<10))
		})
	})
	for name, fn := range map[string]func(*testing.T, *env){
		"StagesWhileWriting":   testStagesWhileWriting,
		"WarmOpenIsFile":       testWarmOpenIsFile,
		"ColdOpenDownloadOnce": testColdOpenDownloadsOnce,
		"NeverUnverified":      testNeverUnverified,
		"SpoolLimit":           testSpoolLimit,
		"Revalidate":           testRevalidate,
		"RevalidateOnce":       testRevalidateOnce,
		"Restart":              testRestart,
		"WalkAndTouch":         testWalkAndTouch,
		"TwoReplicasOneBlob":   testTwoReplicasOneBlob,
		"StalledDownload":      testStalledDownload,
		"LocalIngest":          testLocalIngest,
		"LocalIngestShared":    testLocalIngestShared,
	} {
		t.Run(name, func(t *testing.T) { t.Parallel(); fn(t, e) })
	}
}

// Blocks are staged while bytes arrive and committed create-only after the
// digest verified; nothing is visible before.
func testStagesWhileWriting(t *testing.T, e *env) {
	ctx := context.Background()
	rec := &recorder{}
	s := newStore(t, e.container(t, rec), WithBlockSize(16<<10))
	b, d := testBlob(100_000, 1)
	w, err := s.Ingest(ctx, d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(b[:64<<10])
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := rec.count("PUT block"); n < 4; n, _ = rec.count("PUT block") {
		if time.Now().After(deadline) {
			t.Fatalf("%d blocks staged before Commit, want 4", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("staged blocks are visible before commit: %v", err)
	}
	w.Write(b[64<<10:])
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stagedAndCommitted(t, rec, s, d, b)
}

// stagedAndCommitted checks that the 100,000 bytes b went up as seven
// staged blocks of 16 KiB and one create-only commit, and that another
// replica reads them as d.
func stagedAndCommitted(t *testing.T, rec *recorder, s *Store, d digest.Digest, b []byte) {
	t.Helper()
	blocks, _ := rec.count("PUT block")
	commits, h := rec.count("PUT blocklist")
	if blocks != 7 || commits != 1 || h.Get("If-None-Match") != "*" {
		t.Fatalf("blocks %d, commits %d, If-None-Match %q; want 7, 1, *", blocks, commits, h.Get("If-None-Match"))
	}
	got, err := content.ReadAll(context.Background(), newStore(t, s.ctr), d) // another replica
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read back from another replica: %v", err)
	}
}

// A committed blob is warm at once: Open hands out the spooled *os.File
// without asking the container.
func testWarmOpenIsFile(t *testing.T, e *env) {
	ctx := context.Background()
	rec := &recorder{}
	s := newStore(t, e.container(t, rec))
	b, d := testBlob(50_000, 2)
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	for range 3 {
		rc, info, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rc.(*os.File); !ok || info.Size != int64(len(b)) {
			t.Fatalf("Open returned %T size %d, want *os.File of %d", rc, info.Size, len(b))
		}
		rc.Close()
	}
	if n := len(rec.reqs); n != 0 {
		t.Fatalf("warm opens sent %d requests (%v), want 0", n, rec.reqs)
	}
}

// Many opens of a blob another replica wrote make one download; everyone
// reads the right bytes and the next Open is a file.
func testColdOpenDownloadsOnce(t *testing.T, e *env) {
	ctx := context.Background()
	rec := &recorder{}
	ctr := e.container(t, rec)
	b, d := testBlob(3<<20, 3)
	if _, err := content.WriteBlob(ctx, newStore(t, ctr), d, b); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, ctr)
	rec.reset()
	var g errgroup.Group
	for i := range 20 {
		g.Go(func() error {
			rc, info, err := s.Open(ctx, d)
			if err != nil {
				return err
			}
			defer rc.Close()
			off := int64(i * 1000)
			if _, err := rc.Seek(off, io.SeekStart); err != nil {
				return err
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, b[off:]) || info.Size != int64(len(b)) {
				return errors.New("wrong bytes from a cold open")
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n, _ := rec.count("GET"); n != 1 {
		t.Fatalf("%d GETs for 20 cold opens, want 1", n)
	}
	contenttest.OpensFile(t, s, d, "after the download")
}

// Bytes in the container that do not match the name are never served as
// complete, nor spooled.
func testNeverUnverified(t *testing.T, e *env) {
	ctx := context.Background()
	ctr := e.container(t, nil)
	b, d := testBlob(200_000, 4)
	bad := append([]byte(nil), b...)
	bad[150_000] ^= 1
	if _, err := ctr.Put(ctx, blobName(d), bad, azure.Cond{}); err != nil { // not through a store
		t.Fatal(err)
	}
	s := newStore(t, ctr)
	for range 2 {
		rc, _, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rc.(*os.File); ok {
			t.Fatal("a corrupt blob was spooled")
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		var me *content.MismatchError
		if !errors.Is(err, errDownload) || !errors.As(err, &me) {
			t.Fatalf("reading a corrupt blob: %v, want a download mismatch error", err)
		}
	}
	if _, _, err := s.Open(ctx, digest.FromString("absent")); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Open of an absent blob: %v", err)
	}
}

// The spool stays under its limit, evicting the least recently used; a
// blob larger than the limit is still served.
func testSpoolLimit(t *testing.T, e *env) {
	ctx := context.Background()
	rec := &recorder{}
	ctr := e.container(t, rec)
	writer := newStore(t, ctr, WithSpoolLimit(0))
	var ds []digest.Digest
	var bs [][]byte
	for i := range 4 {
		b, d := testBlob(100_000, byte(10+i))
		if _, err := content.WriteBlob(ctx, writer, d, b); err != nil {
			t.Fatal(err)
		}
		ds, bs = append(ds, d), append(bs, b)
	}
	big, bigD := testBlob(300_000, 20)
	if _, err := content.WriteBlob(ctx, writer, bigD, big); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, ctr, WithSpoolLimit(250_000))
	open := func(d digest.Digest, want []byte) (isFile bool) {
		t.Helper()
		rc, _, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %s: %v", d, err)
		}
		_, isFile = rc.(*os.File)
		return isFile
	}
	for i := range 2 {
		open(ds[i], bs[i])
	}
	if !open(ds[0], bs[0]) { // now the most recently used
		t.Fatal("blob 0 was not spooled")
	}
	open(ds[2], bs[2]) // evicts blob 1, the least recently used
	if !open(ds[0], bs[0]) || !open(ds[2], bs[2]) || open(ds[1], bs[1]) {
		t.Fatal("the spool did not evict the least recently used blob")
	}
	if s.spool.used > 250_000 {
		t.Fatalf("spool holds %d bytes, limit 250000", s.spool.used)
	}
	rec.reset()
	for range 2 {
		if open(bigD, big) {
			t.Fatal("a blob over the spool limit was spooled")
		}
	}
	if n, _ := rec.count("GET"); n != 2 {
		t.Fatalf("%d GETs for two opens of an unspoolable blob, want 2", n)
	}
}

// A spooled blob deleted by another replica stops being served once the
// revalidation interval has passed.
func testRevalidate(t *testing.T, e *env) {
	ctx := context.Background()
	ctr := e.container(t, nil)
	b, d := testBlob(10_000, 5)
	now := time.Now()
	var mu sync.Mutex
	s := newStore(t, ctr, WithRevalidate(time.Minute))
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatal(err)
	}
	if err := newStore(t, ctr).Delete(ctx, d); err != nil { // another replica
		t.Fatal(err)
	}
	rc, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatalf("within the revalidation interval: %v", err)
	}
	rc.Close()
	if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Stat asks the container: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, _, err := s.Open(ctx, d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("after the revalidation interval: %v, want ErrNotFound", err)
	}
	if f, _ := s.spool.open(d); f != nil {
		f.Close()
		t.Fatal("the deleted blob stayed in the spool")
	}
}

// Opens of a spooled blob at once, past the revalidation interval, ask
// the container once; later ones find it confirmed and ask nothing.
func testRevalidateOnce(t *testing.T, e *env) {
	ctx := context.Background()
	rec := &recorder{}
	s := newStore(t, e.container(t, rec), WithRevalidate(time.Minute))
	now := time.Now()
	var mu sync.Mutex
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, d := testBlob(10_000, 9)
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	const n = 8
	// A HEAD waits until n are held (one per Open, were each to ask), or
	// a while: the Opens overlap.
	var held atomic.Int32
	all := make(chan struct{})
	rec.hold = func(r *http.Request) {
		if r.Method != http.MethodHead {
			return
		}
		if held.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-time.After(300 * time.Millisecond):
		}
	}
	rec.reset()
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	open := func() {
		defer wg.Done()
		rc, _, err := s.Open(ctx, d)
		if err != nil {
			errs <- err
			return
		}
		defer rc.Close()
		if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, b) {
			errs <- fmt.Errorf("read %d bytes, %v", len(got), err)
		}
	}
	for range n {
		wg.Add(1)
		go open()
	}
	wg.Wait()
	wg.Add(1)
	open()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, _ := rec.count("HEAD"); got != 1 || len(rec.reqs) != 1 {
		t.Fatalf("%d opens past the revalidation interval sent %v, want one HEAD", n+1, rec.reqs)
	}
}

// A restart keeps the spool and drops unfinished ingests.
func testRestart(t *testing.T, e *env) {
	ctx := context.Background()
	ctr := e.container(t, nil)
	dir := t.TempDir()
	s, err := New(ctr, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, d := testBlob(20_000, 6)
	if _, err := content.WriteBlob(ctx, s, d, b); err != nil {
		t.Fatal(err)
	}
	w, _ := s.Ingest(ctx, digest.FromString("never committed"), -1)
	w.Write([]byte("partial")) // a crash leaves this behind
	s2, err := New(ctr, dir)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "ingest")); len(left) != 0 {
		t.Fatalf("ingest leftovers not removed: %d", len(left))
	}
	contenttest.OpensFile(t, s2, d, "after a restart (the spooled file)")
	w.Close()
}

// Walk lists the container's blobs and nothing else; committing a blob
// that exists moves its ModTime forward (a collector then spares it).
func testWalkAndTouch(t *testing.T, e *env) {
	ctx := context.Background()
	ctr := e.container(t, nil)
	s := newStore(t, ctr)
	b1, d1 := testBlob(1000, 7)
	b2, d2 := testBlob(2000, 8)
	first, err := content.WriteBlob(ctx, s, d1, b1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := content.WriteBlob(ctx, s, d2, b2); err != nil {
		t.Fatal(err)
	}
	if _, err := ctr.Put(ctx, "meta/something", []byte("x"), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctr.Put(ctx, prefix+"sha256/not-a-digest", []byte("x"), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	seen := map[digest.Digest]int64{}
	if err := s.Walk(ctx, func(i content.Info) error { seen[i.Digest] = i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[d1] != 1000 || seen[d2] != 2000 {
		t.Fatalf("walk saw %v", seen)
	}
	stop := errors.New("stop")
	if err := s.Walk(ctx, func(content.Info) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Walk did not stop: %v", err)
	}
	time.Sleep(1100 * time.Millisecond) // Last-Modified has whole seconds
	again, err := content.WriteBlob(ctx, newStore(t, ctr), d1, b1)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, d1)
	if err != nil || !info.ModTime.After(first.ModTime) || !info.ModTime.Equal(again.ModTime) {
		t.Fatalf("rewrite: ModTime %v -> %v (commit said %v), %v", first.ModTime, info.ModTime, again.ModTime, err)
	}
	if !strings.HasPrefix(blobName(d1), "blobs/sha256/") {
		t.Fatalf("blob name %s", blobName(d1))
	}
}

// Two replicas fill the same blob at once, each staging its own blocks:
// the first commit wins, the second finds the blob there (its staged
// blocks are dropped by the first commit) and succeeds without rewriting.
func testTwoReplicasOneBlob(t *testing.T, e *env) {
	ctx := context.Background()
	recA, recB := &recorder{}, &recorder{}
	ca := e.container(t, recA)
	a := newStore(t, ca, WithBlockSize(16<<10))
	b := newStore(t, e.open(t, ca.Name(), recB), WithBlockSize(16<<10))
	data, d := testBlob(64<<10, 9)
	wa, err := a.Ingest(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	wb, err := b.Ingest(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	wa.Write(data)
	wb.Write(data)
	if _, err := wa.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.Commit(ctx); err != nil {
		t.Fatalf("the second replica's commit: %v", err)
	}
	if n, _ := recB.count("PUT metadata"); n != 1 {
		t.Fatalf("the second replica touched the blob %d times, want 1 (requests %v)", n, recB.reqs)
	}
	got, err := content.ReadAll(ctx, newStore(t, ca), d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

// A download that stops receiving fails its readers (never a complete
// body) once the stall timeout passes, and the next Open starts afresh.
func testStalledDownload(t *testing.T, e *env) {
	ctx := context.Background()
	rec := &recorder{}
	ctr := e.container(t, rec)
	b, d := testBlob(100_000, 40)
	if _, err := content.WriteBlob(ctx, newStore(t, ctr), d, b); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, ctr)
	s.stall = time.Second
	rec.stall.Store(true)
	var got []byte
	rc, _, err := s.Open(ctx, d)
	if err == nil { // else the response did not even start in time on a busy machine
		got, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, errDownload) {
			t.Fatalf("stalled download: %v, want a download error", err)
		}
	}
	if !errors.Is(err, context.Canceled) || len(got) > 1000 {
		t.Fatalf("stalled download: %d bytes, %v; want it cancelled", len(got), err)
	}
	rec.stall.Store(false)
	s.stall = downloadStall // no download runs now
	got, err = content.ReadAll(ctx, s, d)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("Open after a stalled download: %v", err)
	}
}
