package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
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

// errBroken marks a body that ended before its length.
var errBroken = errors.New("broken body")

// statusError is an unexpected HTTP status on a blob GET.
type statusError struct {
	status string
	code   int
}

func (e *statusError) Error() string { return e.status }

// image is one image of a node's pull set.
type image struct {
	name string // as listed, e.g. mcr.microsoft.com/oss/kubernetes/pause:3.10
	repo string // repository path without the target's prefix: oss/kubernetes/pause
	ref  string // tag, or digest ("sha256:...")
}

// imagesOf turns catalog references (mcr.microsoft.com images) into a pull set.
func imagesOf(refs []catalog.Ref) []image {
	out := make([]image, len(refs))
	for i, r := range refs {
		out[i] = imageOf(r)
	}
	return out
}

// imageOf is the image of a catalog reference.
func imageOf(r catalog.Ref) image { return image{name: r.Image(), repo: r.Repo, ref: r.Tag} }

// reference is the image on inst, as ggcr names it.
func (im image) reference(inst *instance) (name.Reference, error) {
	sep := ":"
	if strings.Contains(im.ref, ":") {
		sep = "@"
	}
	return name.ParseReference(repoName(inst, im.repo)+sep+im.ref, inst.nameOpts()...)
}

// nodeResult is what one simulated node measured.
type nodeResult struct {
	Start    time.Time       // when it started pulling
	Duration time.Duration   // time to pull the whole set
	Images   []time.Duration // per image of the set, in order (0: failed)
	Bytes    int64           // manifest and blob bytes received
	TTFB     []time.Duration // per blob GET: request sent to first body byte
	Requests int64           // HTTP requests sent (redirects included)
	Errors   int64           // 5xx/429 answers, transport errors and broken bodies seen
	Kinds    map[string]int64
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
	cred    authn.Authenticator          // nil until the first image
	auth    map[string]http.RoundTripper // repository -> authorised transport
	have    map[v1.Hash]bool
	res     nodeResult
	resLock sync.Mutex
}

func newNode(inst *instance) *node {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: blobParallelism + 1,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
		TLSClientConfig:     inst.tlsConfig(),
		TLSHandshakeTimeout: 10 * time.Second,
	}
	base := &countingTransport{inner: tr, plain: !inst.https()}
	if inst.https() {
		base.inner = &httpsOnly{inner: tr, host: inst.host()}
	}
	return &node{inst: inst, tr: tr, base: base, auth: map[string]http.RoundTripper{}, have: map[v1.Hash]bool{}}
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

// repoName is repo's name on inst.
func repoName(inst *instance, repo string) string {
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
	r.Kinds = n.base.kinds(n.res.Kinds)
	return r
}

func (n *node) note(f func(r *nodeResult)) {
	n.resLock.Lock()
	defer n.resLock.Unlock()
	f(&n.res)
}

// noteKind counts an error the node saw by kind (the caller counts it in
// Errors when it is one of those).
func (n *node) noteKind(kind string) {
	n.note(func(r *nodeResult) {
		if r.Kinds == nil {
			r.Kinds = map[string]int64{}
		}
		r.Kinds[kind]++
	})
}

// pull pulls the images (for the target's platform) one after another,
// like kubelet's serial image pulls, and records the total duration and
// each image's.
func (n *node) pull(ctx context.Context, set []image) {
	start := time.Now()
	n.note(func(res *nodeResult) { res.Start, res.Images = start, make([]time.Duration, len(set)) })
	for i, im := range set {
		t0 := time.Now()
		if err := n.pullImage(ctx, im); err != nil {
			n.note(func(res *nodeResult) {
				if res.Failed == nil {
					res.Failed = fmt.Errorf("%s: %w", im.name, err)
				}
			})
			continue
		}
		n.note(func(res *nodeResult) { res.Images[i] = time.Since(t0) })
	}
	n.note(func(res *nodeResult) { res.Duration = time.Since(start) })
}

// retry runs f up to attempts times, each on the instance the node talks
// to at the time: the next on the node's next mirror. It stops at once,
// staying on the mirror, when f returns a final error (and returns the
// error inside it).
func (n *node) retry(ctx context.Context, f func(inst *instance) error) error {
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
		inst, at := n.endpoint()
		err = f(inst)
		if fe, ok := err.(final); ok {
			return fe.error
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		n.moveOn(at)
		if !retryable(err) {
			return err
		}
	}
	return err
}

// final is an error f of retry returns when trying again is pointless.
type final struct{ error }

// retryable reports whether containerd would try again: not after an
// answer that will not change (401, 403, 404).
func retryable(err error) bool {
	var te *transport.Error
	var se *statusError
	switch {
	case errors.As(err, &te):
		return retryableStatus(te.StatusCode)
	case errors.As(err, &se):
		return retryableStatus(se.code)
	}
	return true
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

// credential returns the node's authenticator, made once (an ACR token
// exchange happens here, once per node, like the kubelet credential
// provider's).
func (n *node) credential(ctx context.Context) (authn.Authenticator, error) {
	n.mu.Lock()
	c := n.cred
	n.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if n.inst.creds == nil {
		c = authn.Anonymous
	} else {
		var err error
		if c, err = n.inst.creds.authenticator(ctx, n); err != nil {
			return nil, err
		}
	}
	n.mu.Lock()
	n.cred = c
	n.mu.Unlock()
	return c, nil
}

// transport returns a transport authorised to pull repo (ggcr's ping and
// token flow), cached per repository. The replicas of a cluster run
// without auth here, so the transport serves each of them.
func (n *node) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	n.mu.Lock()
	t, ok := n.auth[repo]
	n.mu.Unlock()
	if ok {
		return t, nil
	}
	cred, err := n.credential(ctx)
	if err != nil {
		return nil, err
	}
	err = n.retry(ctx, func(inst *instance) error {
		r, err := name.NewRepository(repoName(inst, repo), inst.nameOpts()...)
		if err != nil {
			return err
		}
		t, err = transport.NewWithContext(ctx, r.Registry, cred, n.base, []string{r.Scope(transport.PullScope)})
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

// pullImage resolves the image, then fetches the config and layers three
// at a time.
func (n *node) pullImage(ctx context.Context, im image) error {
	t, m, err := n.resolveImage(ctx, im)
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
			errs[i] = n.blob(ctx, client, im.repo, d)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resolveImage authorises the node for the image's repository and fetches
// its manifest for the target's platform.
func (n *node) resolveImage(ctx context.Context, im image) (http.RoundTripper, *v1.Manifest, error) {
	t, err := n.transport(ctx, im.repo)
	if err != nil {
		return nil, nil, err
	}
	m, err := n.headAndGet(ctx, t, im)
	return t, m, err
}

// headAndGet resolves the image with HEAD, GETs the manifest by digest
// and, for an index, the child for the target's platform; each request
// goes to the replica the node talks to at the time.
func (n *node) headAndGet(ctx context.Context, t http.RoundTripper, im image) (*v1.Manifest, error) {
	opts := []remote.Option{remote.WithTransport(t), remote.WithContext(ctx)}
	var desc *v1.Descriptor
	err := n.retry(ctx, func(inst *instance) error {
		ref, err := im.reference(inst)
		if err != nil {
			return err
		}
		desc, err = remote.Head(ref, opts...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	raw, err := n.manifest(ctx, im.repo, desc.Digest, opts)
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		p := n.inst.platformOrDefault()
		child, ok := pickPlatform(idx.Manifests, p)
		if !ok {
			return nil, fmt.Errorf("no %s manifest", p)
		}
		if raw, err = n.manifest(ctx, im.repo, child.Digest, opts); err != nil {
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
	err := n.retry(ctx, func(inst *instance) error {
		ref, err := image{repo: repo, ref: d.String()}.reference(inst)
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

// pickPlatform finds p (os/arch, and the variant when p has one).
func pickPlatform(ds []v1.Descriptor, p v1.Platform) (v1.Descriptor, bool) {
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == p.OS && d.Platform.Architecture == p.Architecture &&
			(p.Variant == "" || d.Platform.Variant == p.Variant) {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// blobOf looks a blob up in the catalog by repository and digest string.
func blobOf(cat *catalog.Catalog, repo, digest string) (catalog.Blob, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return catalog.Blob{}, err
	}
	return cat.Blob(repo, h)
}
