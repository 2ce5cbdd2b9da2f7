package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

// Client behaviour, modelled on containerd's defaults.
const (
	blobParallelism = 3                     // max_concurrent_downloads
	attempts        = 2                     // containerd retries a failed request once
	retryPause      = 50 * time.Millisecond // before the retry
)

// errCorrupt marks a complete response (full length) whose bytes do not match
// the digest: what a cache must never serve.
var errCorrupt = errors.New("corrupt body: complete response with the wrong digest")

// nodeResult is what one simulated node measured.
type nodeResult struct {
	Duration time.Duration
	Bytes    int64           // manifest and blob bytes received
	TTFB     []time.Duration // per blob GET: request sent to first body byte
	Requests int64           // HTTP requests sent (redirects included)
	Errors   int64           // 5xx/429 answers, transport errors and broken bodies seen
	Retries  int64
	Corrupt  int64
	Failed   error // first image that could not be pulled after retries

	Moves    int64         // times the node turned to another replica after a failed request
	MaxStall time.Duration // longest silence of a blob transfer, request sent to first byte included
	// With a watch (see stallClock), once the kill happened:
	KillStall  time.Duration // the longest silence that ended after the kill
	KillResume time.Duration // the longest wait after the kill for a byte of a body under way at the kill
	KillGap    time.Duration // the longest wait for a byte of the watched blob after the kill
}

// node is one simulated AKS node: its own connection pool and token cache,
// and the blobs it already holds (shared layers are fetched once).
type node struct {
	inst    *instance   // the target, or the replica the node talks to first
	mirrors []*instance // where it turns after a failed request, its own replica first; nil: inst alone
	at      int         // index in mirrors of the replica it talks to now (under mu)
	watch   *blobWatch  // the failover scenario's big blob; nil: none
	tr      *http.Transport
	base    *countingTransport
	mu      sync.Mutex
	auth    map[string]http.RoundTripper // repository -> authorised transport
	have    map[v1.Hash]bool
	res     nodeResult
	resLock sync.Mutex
}

func newNode(inst *instance) *node {
	tr := &http.Transport{
		MaxIdleConnsPerHost: blobParallelism + 1,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
	}
	return &node{inst: inst, tr: tr, base: &countingTransport{inner: tr}, auth: map[string]http.RoundTripper{}, have: map[v1.Hash]bool{}}
}

// newNodeAt returns node i of a storm on inst: on a cluster, it talks to
// replica i mod N first and to the next ones after a failed request.
func newNodeAt(inst *instance, i int) *node {
	n := newNode(inst.forNode(i))
	if m := inst.members(); len(m) > 1 {
		for k := range m {
			n.mirrors = append(n.mirrors, m[(i+k)%len(m)])
		}
	}
	return n
}

// endpoint returns the instance the node talks to now and its index among
// the mirrors.
func (n *node) endpoint() (*instance, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.mirrors) == 0 {
		return n.inst, 0
	}
	return n.mirrors[n.at], n.at
}

// moveOn turns the node to its next mirror after a request to mirror at
// failed, as containerd tries the next host of hosts.toml; a failure on a
// mirror the node has left already changes nothing.
func (n *node) moveOn(at int) {
	n.mu.Lock()
	moved := len(n.mirrors) > 1 && n.at == at
	if moved {
		n.at = (at + 1) % len(n.mirrors)
	}
	n.mu.Unlock()
	if moved {
		n.note(func(r *nodeResult) { r.Moves++ })
	}
}

// repoName is repo's name on the instance the node talks to now.
func (n *node) repoName(repo string) string {
	inst, _ := n.endpoint()
	return inst.host() + "/" + inst.prefix + repo
}

// close drops the node's idle connections.
func (n *node) close() { n.tr.CloseIdleConnections() }

// result returns the node's measurements.
func (n *node) result() nodeResult {
	n.resLock.Lock()
	defer n.resLock.Unlock()
	r := n.res
	r.Requests = n.base.requests.Load()
	r.Errors += n.base.errors.Load()
	return r
}

func (n *node) note(f func(r *nodeResult)) {
	n.resLock.Lock()
	defer n.resLock.Unlock()
	f(&n.res)
}

// pull pulls refs (linux/amd64) one image after another, like kubelet's
// serial image pulls, and records the total duration.
func (n *node) pull(ctx context.Context, refs []catalog.Ref) {
	start := time.Now()
	for _, r := range refs {
		if err := n.pullImage(ctx, r); err != nil {
			n.note(func(res *nodeResult) {
				if res.Failed == nil {
					res.Failed = fmt.Errorf("%s: %w", r, err)
				}
			})
		}
	}
	n.note(func(res *nodeResult) { res.Duration = time.Since(start) })
}

// retry runs f up to attempts times, the next on the node's next mirror.
func (n *node) retry(ctx context.Context, f func() error) error {
	var err error
	for i := range attempts {
		if i > 0 {
			n.note(func(r *nodeResult) { r.Retries++ })
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryPause):
			}
		}
		_, at := n.endpoint()
		if err = f(); err == nil || ctx.Err() != nil {
			return err
		}
		n.moveOn(at)
	}
	return err
}

// transport returns a transport authorised to pull repo (ggcr's ping and
// anonymous token flow), cached per repository. The replicas of a cluster
// run without auth here, so the transport serves each of them.
func (n *node) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	n.mu.Lock()
	t, ok := n.auth[repo]
	n.mu.Unlock()
	if ok {
		return t, nil
	}
	err := n.retry(ctx, func() error {
		r, err := name.NewRepository(n.repoName(repo), name.Insecure)
		if err != nil {
			return err
		}
		t, err = transport.NewWithContext(ctx, r.Registry, authn.Anonymous, n.base, []string{r.Scope(transport.PullScope)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	n.mu.Lock()
	n.auth[repo] = t
	n.mu.Unlock()
	return t, nil
}

// client returns an HTTP client authorised for repo (after transport).
func (n *node) client(repo string) *http.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &http.Client{Transport: n.auth[repo]}
}

// pullImage resolves the tag with HEAD, fetches the index and the
// linux/amd64 manifest, then the config and layers three at a time.
func (n *node) pullImage(ctx context.Context, r catalog.Ref) error {
	t, err := n.transport(ctx, r.Repo)
	if err != nil {
		return err
	}
	m, err := n.headAndGet(ctx, t, r)
	if err != nil {
		return err
	}
	var todo []v1.Descriptor
	n.mu.Lock()
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if !n.have[d.Digest] {
			n.have[d.Digest] = true
			todo = append(todo, d)
		}
	}
	n.mu.Unlock()
	client := &http.Client{Transport: t}
	errs := make([]error, len(todo))
	sem := make(chan struct{}, blobParallelism)
	var wg sync.WaitGroup
	for i, d := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = n.blob(ctx, client, r.Repo, d)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// headAndGet resolves r with HEAD, GETs the manifest by digest and, for an
// index, the linux/amd64 child.
func (n *node) headAndGet(ctx context.Context, t http.RoundTripper, r catalog.Ref) (*v1.Manifest, error) {
	opts := []remote.Option{remote.WithTransport(t), remote.WithContext(ctx)}
	var desc *v1.Descriptor
	err := n.retry(ctx, func() error {
		tag, err := name.NewTag(n.repoName(r.Repo)+":"+r.Tag, name.Insecure)
		if err != nil {
			return err
		}
		desc, err = remote.Head(tag, opts...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	raw, err := n.manifest(ctx, r.Repo, desc.Digest, opts)
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		child, ok := pickPlatform(idx.Manifests, "linux", "amd64")
		if !ok {
			return nil, errors.New("no linux/amd64 manifest")
		}
		if raw, err = n.manifest(ctx, r.Repo, child.Digest, opts); err != nil {
			return nil, err
		}
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

// manifest GETs a manifest of repo by digest (ggcr verifies it) and counts
// its bytes.
func (n *node) manifest(ctx context.Context, repo string, d v1.Hash, opts []remote.Option) ([]byte, error) {
	var got *remote.Descriptor
	err := n.retry(ctx, func() error {
		ref, err := name.NewDigest(n.repoName(repo)+"@"+d.String(), name.Insecure)
		if err != nil {
			return err
		}
		got, err = remote.Get(ref, opts...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	n.note(func(r *nodeResult) { r.Bytes += int64(len(got.Manifest)) })
	return got.Manifest, nil
}

func pickPlatform(ds []v1.Descriptor, os, arch string) (v1.Descriptor, bool) {
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == os && d.Platform.Architecture == arch {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// blob GETs one blob (following the 307 to the data endpoint when talking
// to the emulator), hashes it and records the time to its first byte. Like
// containerd, a broken body is resumed once with Range from where it broke
// (on the node's next mirror).
func (n *node) blob(ctx context.Context, c *http.Client, repo string, d v1.Descriptor) error {
	h := sha256.New()
	var got int64
	var err error
	clock := &stallClock{watch: n.watch, watched: n.watch != nil && n.watch.digest == d.Digest}
	defer n.note(func(r *nodeResult) {
		r.MaxStall = max(r.MaxStall, clock.max)
		r.KillStall = max(r.KillStall, clock.killStall)
		r.KillResume = max(r.KillResume, clock.killResume)
		r.KillGap = max(r.KillGap, clock.killGap)
	})
	for i := range attempts {
		if i > 0 {
			n.note(func(r *nodeResult) { r.Retries++ })
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryPause):
			}
		}
		inst, at := n.endpoint()
		url := inst.url + "/v2/" + inst.prefix + repo + "/blobs/" + d.Digest.String()
		var done bool
		if done, err = n.blobPart(ctx, c, url, d, h, &got, clock); done || ctx.Err() != nil {
			break
		}
		n.moveOn(at)
	}
	if err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != d.Digest.Hex {
		n.note(func(r *nodeResult) { r.Corrupt++ })
		return fmt.Errorf("blob %s: %w", d.Digest, errCorrupt)
	}
	return nil
}

// blobPart GETs the blob from *got on, adding what arrives to h and *got;
// done reports that the whole size arrived.
func (n *node) blobPart(ctx context.Context, c *http.Client, url string, d v1.Descriptor, h io.Writer, got *int64, clock *stallClock) (done bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	want := http.StatusOK
	if *got > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", *got))
		want = http.StatusPartialContent
	}
	start := time.Now()
	clock.request(start)
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	fr := &firstByteReader{r: resp.Body, clock: clock}
	switch {
	case resp.StatusCode == want:
	case want == http.StatusPartialContent && resp.StatusCode == http.StatusOK:
		// Range ignored: like containerd, skip what we already have.
		fr.clock = nil // bytes the node has already: not progress
		k, err := io.CopyN(io.Discard, fr, *got)
		fr.clock = clock
		if err != nil {
			n.note(func(r *nodeResult) { r.Bytes += k; r.Errors++ })
			return false, fmt.Errorf("blob %s: resume answered 200, broke after %d bytes: %w", d.Digest, k, err)
		}
		n.note(func(r *nodeResult) { r.Bytes += *got })
	default:
		return false, fmt.Errorf("blob %s: %s (want %d)", d.Digest, resp.Status, want)
	}
	k, err := io.Copy(h, io.LimitReader(fr, d.Size-*got+1))
	*got += k
	n.note(func(r *nodeResult) {
		r.Bytes += k
		if !fr.at.IsZero() && want == http.StatusOK {
			r.TTFB = append(r.TTFB, fr.at.Sub(start))
		}
	})
	switch {
	case err != nil:
		n.note(func(r *nodeResult) { r.Errors++ })
		return false, fmt.Errorf("blob %s: broken after %d of %d bytes: %w", d.Digest, *got, d.Size, err)
	case *got != d.Size:
		n.note(func(r *nodeResult) { r.Errors++ })
		return true, fmt.Errorf("blob %s: %d bytes, want %d", d.Digest, *got, d.Size)
	}
	return true, nil
}

// firstByteReader records when the first byte arrived, and feeds the
// blob's stall clock.
type firstByteReader struct {
	r     io.Reader
	at    time.Time
	clock *stallClock // nil: none
}

func (f *firstByteReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 {
		now := time.Now()
		if f.at.IsZero() {
			f.at = now
		}
		if f.clock != nil {
			f.clock.tick(now, int64(n))
		}
	}
	return n, err
}

// countingTransport counts requests and the error answers a node sees.
type countingTransport struct {
	inner    http.RoundTripper
	requests atomic.Int64
	errors   atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(r)
	if err != nil && r.URL.Scheme == "https" {
		return resp, err // ggcr's ping tries https first on an insecure registry
	}
	c.requests.Add(1)
	if err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		c.errors.Add(1)
	}
	return resp, err
}

// blobOf looks a blob up in the catalog by repository and digest string.
func blobOf(cat *catalog.Catalog, repo, digest string) (catalog.Blob, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return catalog.Blob{}, err
	}
	return cat.Blob(repo, h)
}
