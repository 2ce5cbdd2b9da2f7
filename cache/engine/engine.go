// Package engine is airlock's pull-through cache: it answers the cache
// contract from the local content store and metadata index, and fills
// misses from the upstream once per object, streaming to every waiter while
// it verifies and stores. Several engines sharing one store (replicas,
// WithCluster) fill each object once between them (cluster.go).
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/internal/flight"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Engine implements cache.Source. It is safe for concurrent use.
type Engine struct {
	store content.Store
	index Index
	up    upstream.Client
	log   *zap.Logger
	m     *metrics

	now               func() time.Time
	fillTimeout       time.Duration
	stallTimeout      time.Duration
	revalidateTimeout time.Duration
	resumeAttempts    int
	maxManifest       int64

	policy atomic.Pointer[policy]
	access AccessRecorder // nil: not tracked

	fills    flight.Group[digest.Digest, *fill] // blob fills running now
	private  atomic.Int64                       // private fills running now (passthrough.go)
	flights  flight.Shared[string, any]         // other upstream requests
	bodies   *lru[digest.Digest, []byte]        // manifest bodies
	tagLists *lru[string, tagListing]           // upstream tag listings (taglist.go)

	uploads uploads // push: where upload sessions live (upload.go)

	cluster    Cluster               // nil: this engine is alone (cluster.go)
	relaySpool content.LocalIngester // where relay fills keep their bytes; nil: the store
	cm         *clusterMetrics       // with cluster

	hooks hooks // test seams; zero in production
}

// hooks let a test stop a request at a point where requests race, to force
// one interleaving. Each is nil unless a test of this package sets it.
type hooks struct {
	// missed runs when a request for a blob or manifest ("blob",
	// "manifest") missed the index and is about to look for a fill or an
	// upstream fetch, and when a blob request for another repository's
	// blob has had the upstream's confirmation ("confirmed").
	missed func(ctx context.Context, kind string)
}

func (e *Engine) missed(ctx context.Context, kind string) {
	if e.hooks.missed != nil {
		e.hooks.missed(ctx, kind)
	}
}

var _ cache.Source = (*Engine)(nil)

// policy is the rule set and the credential sets it refers to, swapped as
// one value so that a request sees a consistent pair.
type policy struct {
	rules *rules.Set
	creds map[string]upstream.Credentials
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the time source (tests).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithFillTimeout bounds one upstream fill, however many waiters it has.
func WithFillTimeout(d time.Duration) Option { return func(e *Engine) { e.fillTimeout = d } }

// WithStallTimeout aborts and resumes an upstream body that sends nothing
// for this long.
func WithStallTimeout(d time.Duration) Option { return func(e *Engine) { e.stallTimeout = d } }

// WithRevalidateTimeout bounds a stale tag's upstream check; past it the
// stale copy is served.
func WithRevalidateTimeout(d time.Duration) Option {
	return func(e *Engine) { e.revalidateTimeout = d }
}

// WithResumeAttempts sets how many times a broken upstream body is resumed.
func WithResumeAttempts(n int) Option { return func(e *Engine) { e.resumeAttempts = n } }

// WithMaxManifestSize bounds manifests.
func WithMaxManifestSize(n int64) Option { return func(e *Engine) { e.maxManifest = n } }

// New returns an engine with no rules; call SetRules.
func New(store content.Store, index Index, up upstream.Client, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Engine, error) {
	e := &Engine{
		store: store, index: index, up: up, log: log,
		now:               time.Now,
		fillTimeout:       time.Hour,
		stallTimeout:      60 * time.Second,
		revalidateTimeout: 10 * time.Second,
		resumeAttempts:    5,
		maxManifest:       4 << 20,
		bodies:            newLRU[digest.Digest](defaultManifestCacheBytes, func(b []byte) int64 { return int64(len(b)) }),
		tagLists:          newLRU[string](defaultTagListBytes, tagListing.cost),
	}
	for _, o := range opts {
		o(e)
	}
	e.initUploads()
	m, err := newMetrics(reg, e.uploadStats)
	if err != nil {
		return nil, fmt.Errorf("engine: metrics: %w", err)
	}
	e.m = m
	if e.cluster != nil {
		if e.cm, err = newClusterMetrics(reg); err != nil {
			return nil, fmt.Errorf("engine: metrics: %w", err)
		}
	}
	empty, _ := rules.NewSet(nil)
	e.policy.Store(&policy{rules: empty, creds: map[string]upstream.Credentials{}})
	return e, nil
}

// SetRules swaps the rule set and credential sets; requests already running
// keep the ones they started with.
func (e *Engine) SetRules(s *rules.Set, creds map[string]upstream.Credentials) {
	if creds == nil {
		creds = map[string]upstream.Credentials{}
	}
	e.policy.Store(&policy{rules: s, creds: creds})
}

// Rules returns the current rule set.
func (e *Engine) Rules() *rules.Set { return e.policy.Load().rules }

// target is where a repository's misses go, if anywhere.
type target struct {
	rule string // "" when no rule matches
	repo upstream.Repo
}

func (t target) cached() bool { return t.rule != "" }

func (e *Engine) resolve(repo string) target {
	p := e.policy.Load()
	m, ok := p.rules.Match(repo)
	if !ok {
		return target{}
	}
	return target{rule: m.Rule.Name, repo: upstream.Repo{Host: m.Host, Name: m.Repository, Auth: p.creds[m.Rule.CredentialSet]}}
}

func (e *Engine) ttl(t target) time.Duration {
	if r, ok := e.Rules().Get(t.rule); ok {
		return r.TTL()
	}
	return rules.DefaultTagTTL
}

// localTagList reports whether t's rule lists only the local tags.
func (e *Engine) localTagList(t target) bool {
	r, ok := e.Rules().Get(t.rule)
	return ok && r.TagList == rules.TagListLocal
}

// unknown returns ErrNameUnknown when repo holds nothing, else notFound.
func (e *Engine) unknown(ctx context.Context, repo string, notFound error, what string) error {
	switch _, err := e.index.Repo(ctx, repo); {
	case errors.Is(err, meta.ErrNotFound):
		return fmt.Errorf("%w: %s", cache.ErrNameUnknown, repo)
	case err != nil:
		return err // the index failed: never "unknown"
	}
	return fmt.Errorf("%w: %s %s", notFound, repo, what)
}

// errBadUpstream marks content the upstream sent that airlock cannot use
// (a manifest that does not parse, a blob that does not verify).
var errBadUpstream = errors.New("bad content from upstream")

// upstreamErr turns an upstream failure into the cache contract's errors:
// a 404 is notFound; an upstream that fails, throttles, times out or sends
// bad content is ErrUnavailable or ErrTooManyRequests, never "unknown", so
// that clients do not fall back past the cache. Local failures (store,
// index) are returned as they are.
func upstreamErr(err error, notFound error, what string) error {
	if errors.Is(err, upstream.ErrNotFound) {
		return fmt.Errorf("%w: %s", notFound, what)
	}
	var e *upstream.Error
	var mismatch *content.MismatchError
	switch {
	case errors.As(err, &e):
	case errors.Is(err, errBadUpstream), errors.As(err, &mismatch), errors.Is(err, context.DeadlineExceeded):
	default:
		return err
	}
	ue := &cache.UpstreamError{Err: cache.ErrUnavailable, Cause: err}
	if e != nil {
		ue.RetryAfter = e.RetryAfter
		if e.Throttled() {
			ue.Err = cache.ErrTooManyRequests
		}
	}
	return ue
}

// detached returns a context for work other clients wait on: it survives the
// caller's cancellation and has its own deadline.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// CacheRule implements cache.RuleMatcher.
func (e *Engine) CacheRule(repo string) (string, bool) {
	t := e.resolve(repo)
	return t.rule, t.cached()
}
