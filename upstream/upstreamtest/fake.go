package upstreamtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
)

// Fake is an in-memory upstream.Client: no network and no goroutines, so
// it also runs inside a testing/synctest bubble, where a held blob body
// blocks durably and time moves only when everything waits. It serves what
// the Put methods stored, per repository, counts calls by operation
// ("manifest GET", "manifest HEAD", "blob GET", "blob HEAD", "referrers
// GET", "tags GET"), and can fail an operation or hold a blob body. It is safe for
// concurrent use.
type Fake struct {
	counter
	mu    sync.Mutex
	repos map[string]*fakeRepo
	fails map[string]error
	gates map[string]*gate
	holds map[digest.Digest]*hold
}

type fakeRepo struct {
	manifests map[string]upstream.Manifest // by tag and by digest
	blobs     map[digest.Digest][]byte
}

// gate holds calls of an operation until it is opened.
type gate struct {
	c    chan struct{}
	once sync.Once
}

func (g *gate) open() { g.once.Do(func() { close(g.c) }) }

// hold stops the next body of a blob after some bytes.
type hold struct {
	after   int64
	release chan struct{}
	once    sync.Once
}

var _ upstream.Client = (*Fake)(nil)

// NewFake returns an empty fake upstream.
func NewFake() *Fake {
	f := &Fake{repos: map[string]*fakeRepo{}}
	f.ClearFaults()
	return f
}

func (f *Fake) repo(name string) *fakeRepo {
	r, ok := f.repos[name]
	if !ok {
		r = &fakeRepo{manifests: map[string]upstream.Manifest{}, blobs: map[digest.Digest][]byte{}}
		f.repos[name] = r
	}
	return r
}

// PutBlob stores b in repo and returns its digest.
func (f *Fake) PutBlob(repo string, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	f.mu.Lock()
	f.repo(repo).blobs[d] = b
	f.mu.Unlock()
	return d
}

// PutManifest stores body under its digest and, when tag is not empty,
// points tag at it (moving the tag if it pointed elsewhere).
func (f *Fake) PutManifest(repo, tag, mediaType string, body []byte) digest.Digest {
	d := digest.FromBytes(body)
	m := upstream.Manifest{Digest: d, MediaType: mediaType, Size: int64(len(body)), Body: body}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repo(repo)
	r.manifests[d.String()] = m
	if tag != "" {
		r.manifests[tag] = m
	}
	return d
}

// FakeImage is an image stored by PutImage.
type FakeImage struct {
	Digest   digest.Digest // of the manifest
	Manifest []byte
	Layer    digest.Digest
	Bytes    []byte // the layer's
}

// PutImage stores an OCI image of one layer of size bytes (derived from
// seed, so different seeds give different images) and tags it.
func (f *Fake) PutImage(repo, tag string, size int, seed string) FakeImage {
	layer := make([]byte, size)
	for i := range layer {
		layer[i] = byte(i*7) ^ seed[i%len(seed)]
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	const mt = "application/vnd.oci.image.manifest.v1+json"
	img := FakeImage{Layer: f.PutBlob(repo, layer), Bytes: layer}
	img.Manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mt,
		"config": desc{"application/vnd.oci.image.config.v1+json", f.PutBlob(repo, cfg), int64(len(cfg))},
		"layers": []desc{{"application/vnd.oci.image.layer.v1.tar+gzip", img.Layer, int64(size)}},
	})
	img.Digest = f.PutManifest(repo, tag, mt, img.Manifest)
	return img
}

// Count returns how many calls op had ("blob GET", ...).
func (f *Fake) Count(op string) int { return f.sum(func(k string) bool { return k == op }) }

// Total returns how many calls there were.
func (f *Fake) Total() int { return f.sum(func(string) bool { return true }) }

// Fail makes every call of op fail with err until ClearFaults; err nil
// stops failing op.
func (f *Fake) Fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fails, op)
		return
	}
	f.fails[op] = err
}

// Hold makes the next body of blob d stop after the first after bytes
// until release is called (later bodies are whole). A held body that is
// never released waits, as a stalled connection does, until it is closed.
func (f *Fake) Hold(d digest.Digest, after int64) (release func()) {
	h := &hold{after: after, release: make(chan struct{})}
	f.mu.Lock()
	f.holds[d] = h
	f.mu.Unlock()
	return func() { h.once.Do(func() { close(h.release) }) }
}

// Gate makes every call of op wait (counted as it starts) until release
// is called or its context ends.
func (f *Fake) Gate(op string) (release func()) {
	g := &gate{c: make(chan struct{})}
	f.mu.Lock()
	f.gates[op] = g
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		if f.gates[op] == g {
			delete(f.gates, op)
		}
		f.mu.Unlock()
		g.open()
	}
}

// ClearFaults removes every failure and hold not yet taken, and opens
// every gate.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	gates := f.gates
	f.fails, f.gates, f.holds = map[string]error{}, map[string]*gate{}, map[digest.Digest]*hold{}
	f.mu.Unlock()
	for _, g := range gates {
		g.open()
	}
}

// call counts op, waits at its gate, and returns its injected failure.
func (f *Fake) call(ctx context.Context, op string) error {
	f.add(op)
	f.mu.Lock()
	g := f.gates[op]
	f.mu.Unlock()
	if g != nil {
		select {
		case <-g.c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fails[op]
}

func notFound(r upstream.Repo, what string) error {
	return &upstream.Error{Repo: r.String(), StatusCode: http.StatusNotFound, Err: fmt.Errorf("%s: %w", what, upstream.ErrNotFound)}
}

// Manifest implements upstream.Client.
func (f *Fake) Manifest(ctx context.Context, r upstream.Repo, ref string, head bool) (upstream.Manifest, error) {
	op := "manifest GET"
	if head {
		op = "manifest HEAD"
	}
	if err := f.call(ctx, op); err != nil {
		return upstream.Manifest{}, err
	}
	f.mu.Lock()
	m, ok := f.repo(r.Name).manifests[ref]
	f.mu.Unlock()
	if !ok {
		return upstream.Manifest{}, notFound(r, "manifest "+ref)
	}
	if head {
		m.Body = nil
	}
	return m, nil
}

// Blob implements upstream.Client. It honours offset as a Range request.
func (f *Fake) Blob(ctx context.Context, r upstream.Repo, d digest.Digest, offset, size int64) (upstream.BlobBody, error) {
	if err := f.call(ctx, "blob GET"); err != nil {
		return upstream.BlobBody{}, err
	}
	f.mu.Lock()
	b, ok := f.repo(r.Name).blobs[d]
	h := f.holds[d]
	delete(f.holds, d)
	f.mu.Unlock()
	if !ok {
		return upstream.BlobBody{}, notFound(r, "blob "+d.String())
	}
	if offset > int64(len(b)) {
		return upstream.BlobBody{}, &upstream.Error{Repo: r.String(), StatusCode: http.StatusRequestedRangeNotSatisfiable, Err: errors.New("range")}
	}
	body := &fakeBody{rest: b[offset:], hold: h, closed: make(chan struct{})}
	return upstream.BlobBody{Body: body, Offset: offset, Size: int64(len(b))}, nil
}

// StatBlob implements upstream.Client.
func (f *Fake) StatBlob(ctx context.Context, r upstream.Repo, d digest.Digest) (int64, error) {
	if err := f.call(ctx, "blob HEAD"); err != nil {
		return 0, err
	}
	f.mu.Lock()
	b, ok := f.repo(r.Name).blobs[d]
	f.mu.Unlock()
	if !ok {
		return 0, notFound(r, "blob "+d.String())
	}
	return int64(len(b)), nil
}

// Referrers implements upstream.Client: the fake has none (404).
func (f *Fake) Referrers(ctx context.Context, r upstream.Repo, d digest.Digest, artifactType string) (upstream.Referrers, error) {
	if err := f.call(ctx, "referrers GET"); err != nil {
		return upstream.Referrers{}, err
	}
	return upstream.Referrers{}, notFound(r, "referrers of "+d.String())
}

// Tags implements upstream.Client: the repository's tags, sorted; an
// error wrapping upstream.ErrNotFound if nothing was put in it.
func (f *Fake) Tags(ctx context.Context, r upstream.Repo) ([]string, error) {
	if err := f.call(ctx, "tags GET"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	repo, ok := f.repos[r.Name]
	if !ok {
		return nil, notFound(r, "repository")
	}
	tags := []string{}
	for ref := range repo.manifests {
		if _, err := digest.Parse(ref); err != nil {
			tags = append(tags, ref)
		}
	}
	slices.Sort(tags)
	return tags, nil
}

// errBodyClosed is what a read of a closed body returns.
var errBodyClosed = errors.New("upstreamtest: read on a closed body")

// fakeBody is a blob body that a hold can stop part way.
type fakeBody struct {
	rest   []byte
	sent   int64
	hold   *hold
	closed chan struct{}
	once   sync.Once
}

func (b *fakeBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, errBodyClosed
	default:
	}
	if h := b.hold; h != nil {
		if b.sent >= h.after {
			select {
			case <-h.release:
				b.hold = nil
			case <-b.closed:
				return 0, errBodyClosed
			}
		} else if left := h.after - b.sent; int64(len(p)) > left {
			p = p[:left]
		}
	}
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	b.sent += int64(n)
	return n, nil
}

// Close ends the body; a read blocked by a hold returns an error.
func (b *fakeBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
