package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/memmeta"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// A cluster of engines in this process: they share one content store
// and one index, and reach each other through fakeCluster, which serves a
// peer's blob from its engine as the registry would (the last byte waits
// for the peer's verification) and cuts the peer's answers when it dies.

// fakeNet is what the replicas of a test share: who is dead, who holds
// which fill record, and each replica's engine.
type fakeNet struct {
	mu      sync.Mutex
	engines map[string]*engine.Engine
	dead    map[string]chan struct{} // closed when the replica dies
	holders map[digest.Digest]*fakeClaim
	owner   func(key string, live func(string) bool) string
	// relayManifests makes Manifest ask the peer's engine, as the
	// registry would; else a manifest relay finds its peer gone.
	relayManifests bool
}

func (n *fakeNet) alive(p string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.dead[p]:
		return false
	default:
		return true
	}
}

// kill makes p dead: its answers break, its claims go to whoever asks.
func (n *fakeNet) kill(p string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.dead[p])
}

type relayedKey struct{}

// fakeCluster is one replica's engine.Cluster.
type fakeCluster struct {
	net  *fakeNet
	self string
}

func (c *fakeCluster) Owner(key string) (string, bool) {
	o := c.net.owner(key, c.net.alive)
	return o, o == c.self
}

func (c *fakeCluster) Relayed(ctx context.Context) bool { return ctx.Value(relayedKey{}) != nil }

func (c *fakeCluster) ClaimFill(ctx context.Context, d digest.Digest) (engine.FillClaim, string, error) {
	n := c.net
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.holders[d]
	if h != nil {
		select {
		case <-n.dead[h.holder]:
		default:
			if h.holder == c.self {
				return nil, "", nil
			}
			return nil, h.holder, nil
		}
		close(h.lost) // taken over
	}
	claim := &fakeClaim{net: n, d: d, holder: c.self, takeover: h != nil, lost: make(chan struct{})}
	n.holders[d] = claim
	return claim, "", nil
}

func (c *fakeCluster) Blob(ctx context.Context, peer, repo string, d digest.Digest, offset int64, head bool) (upstream.BlobBody, error) {
	n := c.net
	if !n.alive(peer) {
		return upstream.BlobBody{}, &upstream.Error{Repo: peer, Err: errors.New("connection refused")}
	}
	n.mu.Lock()
	eng, died := n.engines[peer], n.dead[peer]
	n.mu.Unlock()
	// The answer lasts as long as the peer: its death cuts it.
	rctx, cancel := context.WithCancel(context.WithValue(ctx, relayedKey{}, peer))
	go func() {
		select {
		case <-died:
		case <-ctx.Done():
		}
		cancel()
	}()
	b, err := eng.Blob(rctx, repo, d, head)
	switch {
	case errors.Is(err, cache.ErrBlobUnknown):
		return upstream.BlobBody{}, &upstream.Error{Repo: peer, StatusCode: http.StatusNotFound, Err: err}
	case err != nil:
		return upstream.BlobBody{}, &upstream.Error{Repo: peer, StatusCode: http.StatusServiceUnavailable, Err: err}
	case head:
		return upstream.BlobBody{Size: b.Size}, nil
	}
	if _, err := b.Content.Seek(offset, io.SeekStart); err != nil {
		b.Content.Close()
		return upstream.BlobBody{}, err
	}
	return upstream.BlobBody{Body: &peerBody{b: b, ctx: rctx, left: b.Size - offset}, Offset: offset, Size: b.Size}, nil
}

func (c *fakeCluster) Manifest(ctx context.Context, peer, repo, ref string, head bool) (upstream.Manifest, error) {
	if !c.net.relayManifests {
		return upstream.Manifest{}, &upstream.Error{Err: errors.New("not in these tests")}
	}
	m, err := c.net.engines[peer].Manifest(context.WithValue(ctx, relayedKey{}, true), repo, ref, head)
	if err != nil {
		return upstream.Manifest{}, &upstream.Error{StatusCode: http.StatusNotFound, Err: err}
	}
	return upstream.Manifest{Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, Body: m.Body}, nil
}

func (c *fakeCluster) Tags(context.Context, string, string, string, int) ([]string, bool, error) {
	return nil, false, &upstream.Error{Err: errors.New("not in these tests")}
}

// peerBody is a peer's answer: its last byte waits for the peer's
// verification, and it breaks when the peer dies (ctx ends).
type peerBody struct {
	b    *cache.Blob
	ctx  context.Context
	left int64
}

func (p *peerBody) Read(buf []byte) (int, error) {
	if p.left == 1 && p.b.Wait != nil {
		if err := p.b.Wait(p.ctx); err != nil {
			return 0, err
		}
	}
	if int64(len(buf)) >= p.left && p.left > 1 {
		buf = buf[:p.left-1]
	}
	n, err := p.b.Content.Read(buf)
	p.left -= int64(n)
	return n, err
}

func (p *peerBody) Close() error { return p.b.Content.Close() }

// fakeClaim is a held fill record.
type fakeClaim struct {
	net      *fakeNet
	d        digest.Digest
	holder   string
	takeover bool
	lost     chan struct{}
}

func (c *fakeClaim) Takeover() bool        { return c.takeover }
func (c *fakeClaim) Lost() <-chan struct{} { return c.lost }

func (c *fakeClaim) Progress(context.Context, int64) error {
	select {
	case <-c.lost:
		return errors.New("lease conflict")
	default:
		return nil
	}
}

func (c *fakeClaim) Release(context.Context) error {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	if c.net.holders[c.d] == c {
		delete(c.net.holders, c.d)
	}
	return nil
}

// localSpool is a replica's own disk for relayed bytes: an ingest in
// memory that writes the shared store only once shared.
type localSpool struct {
	shared content.Store
	shares atomic.Int32
}

func (s *localSpool) IngestLocal(_ context.Context, d digest.Digest, size int64) (content.LocalIngest, error) {
	return &localIngest{s: s, d: d, size: size}, nil
}

type localIngest struct {
	s      *localSpool
	d      digest.Digest
	size   int64
	mu     sync.Mutex
	buf    []byte
	shared bool
}

func (w *localIngest) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *localIngest) ReadAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if off >= int64(len(w.buf)) {
		return 0, io.EOF
	}
	return copy(p, w.buf[off:]), nil
}

func (w *localIngest) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.buf))
}

func (w *localIngest) Share(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.shared {
		w.shared = true
		w.s.shares.Add(1)
	}
	return nil
}

func (w *localIngest) Commit(ctx context.Context) (content.Info, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := digest.FromBytes(w.buf); got != w.d || w.size >= 0 && int64(len(w.buf)) != w.size {
		return content.Info{}, &content.MismatchError{WantDigest: w.d, GotDigest: got, WantSize: w.size, GotSize: int64(len(w.buf))}
	}
	if w.shared {
		return content.WriteBlob(ctx, w.s.shared, w.d, w.buf)
	}
	return content.Info{Digest: w.d, Size: int64(len(w.buf))}, nil
}

func (w *localIngest) Close() error { return nil }

// offsets records the offset of every upstream blob GET.
type offsets struct {
	upstream.Client
	mu  sync.Mutex
	got []int64
}

func (o *offsets) Blob(ctx context.Context, r upstream.Repo, d digest.Digest, offset, size int64) (upstream.BlobBody, error) {
	o.mu.Lock()
	o.got = append(o.got, offset)
	o.mu.Unlock()
	b, err := o.Client.Blob(ctx, r, d, offset, size)
	if err == nil { // as an HTTP body, it ends with its request
		stop := context.AfterFunc(ctx, func() { b.Body.Close() })
		b.Body = &stopBody{ReadCloser: b.Body, stop: stop}
	}
	return b, err
}

type stopBody struct {
	io.ReadCloser
	stop func() bool
}

func (b *stopBody) Close() error {
	b.stop()
	return b.ReadCloser.Close()
}

func (o *offsets) list() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int64(nil), o.got...)
}

// replicas builds engines a and b of one cluster on a shared store, in
// front of up; the owner of every key is a while it is alive, else b.
func replicas(t *testing.T, up upstream.Client) (n *fakeNet, a, b *engine.Engine, spools map[string]*localSpool, shared content.Store) {
	t.Helper()
	return replicasOn(t, up, memmeta.New())
}

// replicasOn is replicas sharing index; wrap, if given, is the store the
// engines see (shared stays the store itself).
func replicasOn(t *testing.T, up upstream.Client, index engine.Index, wrap ...func(content.Store) content.Store) (n *fakeNet, a, b *engine.Engine, spools map[string]*localSpool, shared content.Store) {
	t.Helper()
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var store content.Store = fs
	for _, w := range wrap {
		store = w(store)
	}
	n = &fakeNet{engines: map[string]*engine.Engine{}, dead: map[string]chan struct{}{}, holders: map[digest.Digest]*fakeClaim{},
		owner: func(_ string, live func(string) bool) string {
			if live("a") {
				return "a"
			}
			return "b"
		}}
	spools = map[string]*localSpool{}
	for _, name := range []string{"a", "b"} {
		spools[name] = &localSpool{shared: store}
		n.dead[name] = make(chan struct{})
		e, err := engine.New(store, index, up, zaptest.NewLogger(t).Named(name), prometheus.NewRegistry(),
			engine.WithCluster(&fakeCluster{net: n, self: name}, spools[name]), engine.WithStallTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		set, err := rules.NewSet([]rules.Rule{aksRule()})
		if err != nil {
			t.Fatal(err)
		}
		e.SetRules(set, nil)
		n.engines[name] = e
		t.Cleanup(func() { // no fill outlives its test
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.Idle(ctx); err != nil {
				t.Errorf("replica %s: fills still running: %v", name, err)
			}
		})
	}
	return n, n.engines["a"], n.engines["b"], spools, fs
}

// read reads a blob's whole content and checks it.
func readBlob(b *cache.Blob, want digest.Digest) error {
	defer b.Content.Close()
	got, err := io.ReadAll(b.Content)
	if err != nil {
		return err
	}
	if b.Wait != nil {
		if err := b.Wait(context.Background()); err != nil {
			return err
		}
	}
	if digest.FromBytes(got) != want {
		return fmt.Errorf("%d bytes that do not verify", len(got))
	}
	return nil
}

// A replica that does not own a blob relays it from the owner, which
// fills it once from the upstream; the relay keeps it to itself.
func TestClusterRelay(t *testing.T) {
	t.Parallel()
	f := upstreamtest.NewFake()
	d := f.PutBlob(upRepo, bytes.Repeat([]byte("relayed "), 64<<10))
	_, _, b, spools, shared := replicas(t, f)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			blob, err := b.Blob(ctx, repo, d, false)
			if err == nil {
				err = readBlob(blob, d)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.Count("blob GET"); n != 1 {
		t.Fatalf("%d upstream GETs, want 1", n)
	}
	if n := spools["b"].shares.Load(); n != 0 {
		t.Fatalf("the relay shared its bytes %d times", n)
	}
	if _, err := shared.Stat(ctx, d); err != nil {
		t.Fatalf("the owner did not publish the blob: %v", err)
	}
}

// statCounting counts the store's Stat calls (each one a round trip to
// Azure on a replica).
type statCounting struct {
	content.Store
	n atomic.Int64
}

func (s *statCounting) Stat(ctx context.Context, d digest.Digest) (content.Info, error) {
	s.n.Add(1)
	return s.Store.Stat(ctx, d)
}

// blobLookups counts an index's blob lookups.
type blobLookups struct {
	engine.Index
	n atomic.Int64
}

func (x *blobLookups) Blob(ctx context.Context, repo string, d digest.Digest) (meta.Blob, error) {
	x.n.Add(1)
	return x.Index.Blob(ctx, repo, d)
}

// A cold GET through a replica that does not own the blob asks the store
// nothing before it relays (the owner asks for it); the owner asks once
// before its fill (the fill slot does not ask again when no fill ended
// meanwhile), and once more when it holds the fill record: two Stats,
// each a round trip to Azure, not five. The index is read once, by the
// replica the client asked: the owner does not read it again.
func TestClusterColdRelayStats(t *testing.T) {
	t.Parallel()
	f := upstreamtest.NewFake()
	d := f.PutBlob(upRepo, bytes.Repeat([]byte("counted "), 8<<10))
	var counted *statCounting
	index := &blobLookups{Index: memmeta.New()}
	_, _, b, _, _ := replicasOn(t, f, index, func(s content.Store) content.Store {
		counted = &statCounting{Store: s}
		return counted
	})
	blob, err := b.Blob(context.Background(), repo, d, false)
	if err == nil {
		err = readBlob(blob, d)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Count("blob GET"); n != 1 {
		t.Fatalf("%d upstream GETs, want 1", n)
	}
	if n := counted.n.Load(); n != 2 {
		t.Fatalf("the store was asked %d times for one cold relayed GET, want 2", n)
	}
	if n := index.n.Load(); n != 1 {
		t.Fatalf("the index was asked %d times for the blob, want 1", n)
	}
}

// peerLinkIndex records what the engine tells an index with a read cache
// of its own about its peers' links.
type peerLinkIndex struct {
	engine.Index
	mu     sync.Mutex
	linked []string
}

func (x *peerLinkIndex) PeerLinked(repo, ref string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.linked = append(x.linked, repo+" "+ref)
}

func (x *peerLinkIndex) calls() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.linked...)
}

// A tag a replica relayed from its owner: the owner fetched and linked
// it, and the relaying replica tells its index that the tag and the
// manifest it names were linked by a peer (so it does not serve a
// NotFound it cached before); a tag it finds fresh it serves itself.
func TestClusterManifestRelayTellsIndex(t *testing.T) {
	t.Parallel()
	f := upstreamtest.NewFake()
	img := f.PutImage(upRepo, "3.10", 1000, "relayed")
	index := &peerLinkIndex{Index: memmeta.New()}
	n, _, b, _, _ := replicasOn(t, f, index)
	n.relayManifests = true
	ctx := context.Background()
	m, err := b.Manifest(ctx, repo, "3.10", false)
	if err != nil || m.Digest != img.Digest || !bytes.Equal(m.Body, img.Manifest) {
		t.Fatalf("relayed manifest: %v %+v", err, m)
	}
	if n := f.Count("manifest GET"); n != 1 {
		t.Fatalf("%d upstream manifest GETs, want 1 (the owner's)", n)
	}
	want := []string{repo + " 3.10", repo + " " + img.Digest.String()}
	if got := index.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("told the index %q, want %q", got, want)
	}
	if _, err := b.Manifest(ctx, repo, "3.10", false); err != nil {
		t.Fatal(err)
	}
	if got := index.calls(); len(got) != len(want) {
		t.Fatalf("a fresh tag served from the index told it %q", got[len(want):])
	}
}

// The owner dies mid-blob while a relay follows it: the relay, owner
// now, takes the fill over from the bytes it has, shares them into the
// store and asks the upstream only for the rest; its client completes.
func TestClusterTakeoverFromRelayedBytes(t *testing.T) {
	t.Parallel()
	f := upstreamtest.NewFake()
	body := bytes.Repeat([]byte("taken over "), 100<<10)
	d := f.PutBlob(upRepo, body)
	release := f.Hold(d, 256<<10)
	defer release()
	up := &offsets{Client: f}
	n, _, b, spools, shared := replicas(t, up)
	ctx := context.Background()
	blob, err := b.Blob(ctx, repo, d, false)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100<<10)
	if _, err := io.ReadFull(blob.Content, head); err != nil {
		t.Fatalf("the relay's client got no bytes while the owner filled: %v", err)
	}
	n.kill("a")
	rest, err := io.ReadAll(blob.Content)
	blob.Content.Close()
	if err != nil {
		t.Fatalf("the relay's client after the owner died: %v", err)
	}
	if err := blob.Wait(ctx); err != nil || digest.FromBytes(append(head, rest...)) != d {
		t.Fatalf("the client's blob: %d bytes, %v", len(head)+len(rest), err)
	}
	got := up.list()
	if len(got) != 2 || got[0] != 0 || got[1] == 0 || got[1] > 256<<10 {
		t.Fatalf("upstream GETs from offsets %v, want 0 then the relay's bytes (at most 256 KiB)", got)
	}
	if spools["b"].shares.Load() != 1 {
		t.Fatal("the relay's bytes were not shared into the store")
	}
	if _, err := shared.Stat(ctx, d); err != nil {
		t.Fatalf("the blob taken over is not published: %v", err)
	}
}
