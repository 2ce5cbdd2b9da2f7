// Package uploadtest is the suite every upload session store runs: chunks
// at the right and wrong offsets, commits that verify (with the session's
// algorithm and another one), mismatches and cancels that end the
// session, broken bodies that keep what arrived, two appends racing for
// one offset, the caps and the idle timeout. A store shared by replicas
// runs it over several views of one set of sessions, each step on another
// view.
package uploadtest

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/upload"
	"github.com/opencontainers/go-digest"
)

// Env is one store under test.
type Env struct {
	// Stores are views of one set of sessions: replicas of a shared store,
	// or the one store of a process.
	Stores []upload.Store
	// Content is the content store committed blobs are published into.
	Content content.Provider
}

// New returns a fresh Env whose stores have the limits l.
type New func(t *testing.T, l upload.Limits) Env

// Run runs the suite.
func Run(t *testing.T, newEnv New) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newEnv New)
	}{
		{"Chunks", testChunks},
		{"WrongOffset", testWrongOffset},
		{"Mismatch", testMismatch},
		{"OtherAlgorithm", testOtherAlgorithm},
		{"Empty", testEmpty},
		{"Cancel", testCancel},
		{"BrokenBody", testBrokenBody},
		{"ClientGone", testClientGone},
		{"RacingAppends", testRacingAppends},
		{"Limits", testLimits},
		{"Expiry", testExpiry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv)
		})
	}
}

var bg = context.Background()

// on returns the i-th view, round robin.
func (e Env) on(i int) upload.Store { return e.Stores[i%len(e.Stores)] }

// open finds session id through view i.
func (e Env) open(t *testing.T, i int, id string) upload.Session {
	t.Helper()
	s, err := e.on(i).Open(bg, id)
	if err != nil {
		t.Fatalf("open %s on view %d: %v", id, i%len(e.Stores), err)
	}
	return s
}

// gone checks that id is unknown on every view.
func (e Env) gone(t *testing.T, id string) {
	t.Helper()
	for i, st := range e.Stores {
		if _, err := st.Open(bg, id); !errors.Is(err, upload.ErrUnknown) {
			t.Fatalf("session %s on view %d: %v, want ErrUnknown", id, i, err)
		}
	}
}

// stored checks that the content store holds b as d.
func (e Env) stored(t *testing.T, d digest.Digest, b []byte) {
	t.Helper()
	got, err := content.ReadAll(bg, e.Content, d)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("%s holds %d bytes, not the %d pushed", d, len(got), len(b))
	}
}

func start(t *testing.T, st upload.Store, o upload.Options) upload.Session {
	t.Helper()
	if o.Repo == "" {
		o.Repo = "team/app"
	}
	s, err := st.Start(bg, o)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if len(s.ID()) != 32 || strings.Trim(s.ID(), "0123456789abcdef") != "" {
		t.Fatalf("session ID %q: want 32 lowercase hex digits", s.ID())
	}
	return s
}

func appendAll(t *testing.T, s upload.Session, offset int64, b []byte) {
	t.Helper()
	if n, err := s.Append(bg, offset, bytes.NewReader(b)); err != nil || n != int64(len(b)) {
		t.Fatalf("append %d bytes at %d: %d, %v", len(b), offset, n, err)
	}
	if got := s.Size(); got != offset+int64(len(b)) {
		t.Fatalf("size after append: %d, want %d", got, offset+int64(len(b)))
	}
}

// blob is n bytes of a pattern that differs per seed.
func blob(n int, seed string) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s-%d;", seed, i)
	}
	return b.Bytes()[:n]
}

// A blob pushed in three chunks, each through another view, commits
// under its digest; every view saw the size grow; the session then ends
// everywhere.
func testChunks(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	b := blob(300_000, "chunks")
	s := start(t, e.on(0), upload.Options{Repo: "team/chunks"})
	if s.Size() != 0 || s.Repo() != "team/chunks" {
		t.Fatalf("new session: size %d, repo %q", s.Size(), s.Repo())
	}
	cuts := []int{0, 100_000, 250_000, len(b)}
	for i := range 3 {
		v := e.open(t, i+1, s.ID())
		if v.Size() != int64(cuts[i]) || v.Repo() != "team/chunks" {
			t.Fatalf("view %d sees size %d repo %q, want %d", i+1, v.Size(), v.Repo(), cuts[i])
		}
		appendAll(t, v, int64(cuts[i]), b[cuts[i]:cuts[i+1]])
	}
	d := digest.FromBytes(b)
	info, err := e.open(t, 4, s.ID()).Commit(bg, d)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != d || info.Size != int64(len(b)) {
		t.Fatalf("commit: %+v", info)
	}
	e.stored(t, d, b)
	e.gone(t, s.ID())
}

// A chunk that does not start where the session ends is refused whole,
// before or after the end; the session goes on.
func testWrongOffset(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	s := start(t, e.on(0), upload.Options{})
	appendAll(t, s, 0, []byte("first"))
	for _, off := range []int64{0, 3, 6, 1000} {
		v := e.open(t, 1, s.ID())
		if n, err := v.Append(bg, off, strings.NewReader("stray")); !errors.Is(err, upload.ErrOffset) || n != 0 {
			t.Fatalf("append at %d of a 5-byte session: %d, %v; want ErrOffset", off, n, err)
		}
		if v.Size() != 5 {
			t.Fatalf("size after a refused chunk: %d", v.Size())
		}
	}
	v := e.open(t, 2, s.ID())
	appendAll(t, v, 5, []byte(" second"))
	d := digest.FromString("first second")
	if _, err := v.Commit(bg, d); err != nil {
		t.Fatal(err)
	}
	e.stored(t, d, []byte("first second"))
}

// A commit under the wrong digest stores nothing and ends the session.
func testMismatch(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	s := start(t, e.on(0), upload.Options{})
	appendAll(t, s, 0, []byte("these bytes"))
	wrong := digest.FromString("other bytes")
	_, err := e.open(t, 1, s.ID()).Commit(bg, wrong)
	var me *content.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("commit under the wrong digest: %v, want a *content.MismatchError", err)
	}
	if _, err := e.Content.Stat(bg, wrong); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("the wrong digest was stored: %v", err)
	}
	if _, err := e.Content.Stat(bg, digest.FromString("these bytes")); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("the bytes were stored under their own digest: %v", err)
	}
	e.gone(t, s.ID())
}

// Bytes hashed with sha256 as they arrived commit under a sha512 digest
// too (read again), and a session started for sha512 commits under one.
func testOtherAlgorithm(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	b := blob(70_000, "sha512")
	sum := sha512.Sum512(b)
	d := digest.NewDigestFromBytes(digest.SHA512, sum[:])
	for i, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		s := start(t, e.on(i), upload.Options{Algorithm: alg})
		appendAll(t, s, 0, b[:30_000])
		appendAll(t, e.open(t, i+1, s.ID()), 30_000, b[30_000:])
		info, err := e.open(t, i+2, s.ID()).Commit(bg, d)
		if err != nil || info.Digest != d || info.Size != int64(len(b)) {
			t.Fatalf("session hashing %s, commit under %s: %+v %v", alg, d, info, err)
		}
		e.stored(t, d, b)
	}
}

// An empty blob commits.
func testEmpty(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	s := start(t, e.on(0), upload.Options{})
	d := digest.FromBytes(nil)
	if info, err := e.open(t, 1, s.ID()).Commit(bg, d); err != nil || info.Size != 0 {
		t.Fatalf("commit of nothing: %+v %v", info, err)
	}
	e.stored(t, d, nil)
}

// Cancel ends the session everywhere; a second cancel and an append
// through a value taken before find it gone.
func testCancel(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	s := start(t, e.on(0), upload.Options{})
	appendAll(t, s, 0, []byte("discard me"))
	old := e.open(t, 1, s.ID())
	if err := e.open(t, 2, s.ID()).Cancel(bg); err != nil {
		t.Fatal(err)
	}
	e.gone(t, s.ID())
	if err := s.Cancel(bg); !errors.Is(err, upload.ErrUnknown) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := old.Append(bg, 10, strings.NewReader("late")); !errors.Is(err, upload.ErrUnknown) {
		t.Fatalf("append to a cancelled session: %v", err)
	}
	if _, err := old.Commit(bg, digest.FromString("discard me")); !errors.Is(err, upload.ErrUnknown) {
		t.Fatalf("commit of a cancelled session: %v", err)
	}
	if _, err := e.Content.Stat(bg, digest.FromString("discard me")); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("a cancelled session's bytes were stored: %v", err)
	}
}

// brokenReader yields its bytes, then fails.
type brokenReader struct{ r io.Reader }

var errBroken = errors.New("connection reset by peer")

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errBroken
	}
	return n, err
}

// A body that breaks keeps what arrived: the session holds those bytes
// and the client resumes after them.
func testBrokenBody(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	b := blob(50_000, "broken")
	s := start(t, e.on(0), upload.Options{})
	n, err := s.Append(bg, 0, &brokenReader{bytes.NewReader(b[:20_000])})
	if !errors.Is(err, errBroken) || n != 20_000 {
		t.Fatalf("broken body: %d, %v; want 20000 and the read error", n, err)
	}
	resumeAfterCut(t, e, s.ID(), b, 20_000, "a broken body")
	d := digest.FromBytes(b)
	if _, err := e.open(t, 2, s.ID()).Commit(bg, d); err != nil {
		t.Fatal(err)
	}
	e.stored(t, d, b)
}

// resumeAfterCut opens session id on another replica, which must hold the
// n bytes of b that arrived before the cut (after what), and appends the
// rest of b there.
func resumeAfterCut(t *testing.T, e Env, id string, b []byte, n int, what string) upload.Session {
	t.Helper()
	v := e.open(t, 1, id)
	if v.Size() != int64(n) {
		t.Fatalf("size after %s: %d, want %d", what, v.Size(), n)
	}
	appendAll(t, v, int64(n), b[n:])
	return v
}

// goneReader yields its bytes, then cancels the request and fails, as a
// client that hangs up mid-chunk.
type goneReader struct {
	b      []byte
	cancel context.CancelFunc
}

func (g *goneReader) Read(p []byte) (int, error) {
	if len(g.b) == 0 {
		g.cancel()
		return 0, context.Canceled
	}
	n := copy(p, g.b)
	g.b = g.b[n:]
	return n, nil
}

// A client that hangs up mid-chunk (its request's context cancelled)
// keeps what arrived too.
func testClientGone(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	b := blob(30_000, "gone")
	s := start(t, e.on(0), upload.Options{})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	n, err := s.Append(ctx, 0, &goneReader{b: b[:12_345], cancel: cancel})
	if err == nil || n != 12_345 {
		t.Fatalf("append cut by the client: %d, %v; want 12345 and an error", n, err)
	}
	v := resumeAfterCut(t, e, s.ID(), b, 12_345, "the client hung up")
	d := digest.FromBytes(b)
	if _, err := v.Commit(bg, d); err != nil {
		t.Fatal(err)
	}
	e.stored(t, d, b)
}

// gatedReader yields its first byte, then waits for open (or a bound)
// before the rest, so that two appends overlap.
type gatedReader struct {
	b    []byte
	off  int
	open <-chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.off >= len(g.b) {
		return 0, io.EOF
	}
	if g.off == 1 {
		select {
		case <-g.open:
		case <-time.After(500 * time.Millisecond):
		}
	}
	end := len(g.b)
	if g.off == 0 {
		end = 1
	}
	n := copy(p, g.b[g.off:end])
	g.off += n
	return n, nil
}

// Two appends at the same offset at once, through two views: one takes
// the offset whole, the other is refused with ErrOffset having written
// nothing, and the blob is the winner's bytes.
func testRacingAppends(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{})
	s := start(t, e.on(0), upload.Options{})
	appendAll(t, s, 0, []byte("head:"))
	bodies := [][]byte{blob(40_000, "left"), blob(30_000, "right")}
	gate := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	type result struct {
		n   int64
		err error
	}
	res := make([]result, 2)
	for i := range 2 {
		v := e.open(t, i+1, s.ID())
		wg.Go(func() {
			n, err := v.Append(bg, 5, &gatedReader{b: bodies[i], open: gate})
			res[i] = result{n, err}
			if err != nil {
				once.Do(func() { close(gate) }) // the loser lets the winner finish
			}
		})
	}
	wg.Wait()
	winner := -1
	for i, r := range res {
		switch {
		case r.err == nil && r.n == int64(len(bodies[i])):
			if winner >= 0 {
				t.Fatalf("both appends at offset 5 succeeded: %+v", res)
			}
			winner = i
		case errors.Is(r.err, upload.ErrOffset) && r.n == 0:
		default:
			t.Fatalf("append %d: %d bytes, %v; want all of them or ErrOffset and none", i, r.n, r.err)
		}
	}
	if winner < 0 {
		t.Fatalf("no append won: %+v", res)
	}
	want := append([]byte("head:"), bodies[winner]...)
	v := e.open(t, 3, s.ID())
	if v.Size() != int64(len(want)) {
		t.Fatalf("size %d after the race, want the winner's %d", v.Size(), len(want))
	}
	d := digest.FromBytes(want)
	if _, err := v.Commit(bg, d); err != nil {
		t.Fatalf("commit of the winner's bytes: %v", err)
	}
	e.stored(t, d, want)
}

// The caps hold: per client, and in all; an ended session frees its slot.
func testLimits(t *testing.T, newEnv New) {
	e := newEnv(t, upload.Limits{MaxPerClient: 1, MaxTotal: 2})
	a := start(t, e.on(0), upload.Options{Client: "a"})
	if _, err := e.on(1).Start(bg, upload.Options{Repo: "r", Client: "a"}); !errors.Is(err, upload.ErrTooMany) {
		t.Fatalf("a second session of client a: %v, want ErrTooMany", err)
	}
	start(t, e.on(1), upload.Options{Client: "b"})
	if _, err := e.on(2).Start(bg, upload.Options{Repo: "r", Client: "c"}); !errors.Is(err, upload.ErrTooMany) {
		t.Fatalf("a third session in all: %v, want ErrTooMany", err)
	}
	if err := e.open(t, 2, a.ID()).Cancel(bg); err != nil {
		t.Fatal(err)
	}
	start(t, e.on(2), upload.Options{Client: "a"})
}

// A session idle past the timeout is discarded, and counted.
func testExpiry(t *testing.T, newEnv New) {
	const idle = time.Second
	e := newEnv(t, upload.Limits{Timeout: idle})
	s := start(t, e.on(0), upload.Options{})
	appendAll(t, s, 0, []byte("abandoned"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.on(1).Open(bg, s.ID())
		if errors.Is(err, upload.ErrUnknown) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("session idle for 10 s with a timeout of %s is still open", idle)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.gone(t, s.ID())
	var expired int64
	for _, st := range e.Stores {
		expired += st.Stats().Expired
	}
	if expired != 1 {
		t.Fatalf("expired sessions counted: %d, want 1", expired)
	}
	if _, err := s.Append(bg, 9, strings.NewReader("late")); !errors.Is(err, upload.ErrUnknown) {
		t.Fatalf("append to an expired session: %v", err)
	}
}
