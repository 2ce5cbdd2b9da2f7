// Package azmeta is the metadata contract (cache/meta) on Azure Blob
// Storage, so that several airlock replicas share one index. It passes the
// same suite (metatest) as the badger index.
//
// # Records
//
// Every key is one small blob under meta/ whose body is the record's JSON
// (the same record types, with the same field names, as badgermeta):
// meta/t/<repo>!<tag>! for tags, meta/m/<repo>!<digest>! manifests,
// meta/b/<repo>!<digest>! blob links, meta/r/<repo>! repositories,
// meta/f/… referrers, meta/a/… access times, meta/p/<ref>!<owner>! pins
// and meta/u/<id>! upload sessions. Each part is escaped by an
// order-preserving code and ends with '!' (names.go), so a listing by
// prefix returns one repository's records only and in the byte order of
// their names: Catalog pages by listing and skipping up to last (the
// service has no "start after"; a listing returns 5,000 names per
// request). A small record also rides in the blob's metadata, so walks
// read a page of records per request.
//
// Writes are single requests, durable in Azure when they return. A tag,
// manifest, blob link, pin or access time is written blind (the contract
// says "replacing": of two replicas flushing access times, the later
// flush wins, each at most a flush interval old); a repository record is
// created with If-None-Match: * and upgraded to pushed with If-Match,
// retried on a conflict. A replica skips the create-only request for a
// repository it recorded less than the mutable TTL ago under the same gate
// ETag (repository records are dropped by Remove, which runs inside
// Exclusive, and every section changes that ETag).
//
// # What a reader on another replica can see mid-way
//
// Azure has no transaction over several blobs; the writes are ordered so
// that no reader ever follows a link to something missing:
//   - PutTag, PutManifest and LinkBlob record the repository first, then
//     the manifest, then its tag. A reader may see the repository before
//     its content, or the new manifest while the tag still points where
//     it did; never the moved tag without its manifest. A crash in
//     between leaves the manifest linked and the tag where it was.
//   - RemoveManifest deletes the tags pointing at d (each If-Match the
//     listing's ETag, so a tag moved meanwhile stays), then d. A reader may
//     see some tags gone while d is still linked, never a removed tag's
//     record with d gone.
//   - Remove deletes tags, then manifests (with their referrers and access
//     times), then blob links, then an emptied cached repository's record
//     (If-Match; re-created at once if a link arrived meanwhile).
//
// # Exclusive
//
// Within one replica Exclusive is badgermeta's gate: linking writes wait.
// Across replicas a section holds a lease on meta/exclusive (15 s,
// renewed every 2 s; if it is lost, the running function's context is
// cancelled and the section fails) for its two phases, each announced by
// rewriting that record (its body and metadata copy: phase, generation),
// which changes its ETag:
//
//  1. Announce: a new generation. Links go on. The holder runs its
//     preparation (ExclusivePrepared: the collector walks the content
//     store) while the settle time (WithSettle, default 2 s) passes.
//  2. Held: links wait, on every replica, while fn runs (the collector
//     reads the index, decides and deletes). No settle time is waited
//     here: links wait for fn's own work only.
//
// A linking write first reads the gate (a HEAD, shared by the writes of a
// quarter of the settle time while it finds no section), waits while a
// section is held, then writes. A link whose gate read was sent at s and
// found no section is applied before its last write returned at r; a
// section announced after that read was served holds links (and reads
// the index) after s + settle, so a link with r - s < 3/4 of the settle
// time is visible to its fn. A slower one, or one whose read found a
// section announced, reads the gate again: the same ETag, or the next
// generation's announcement after no section, means no section is held
// yet and the next one sees the link; anything else fails the write with
// ErrLinkRaced (wrapping meta.ErrRaced: the link may stay, but a collector
// may not have seen it; the caller treats the write as failed, or writes
// again what it knows exists). Only links in flight at the moment a
// section becomes held can fail so. The only assumption is that elapsed
// time runs at the same rate on both machines. A dead holder's lease
// expires within 15 s and writers go on.
//
// # Read cache
//
// Reads go through a bounded LRU on this replica (cache.go): blob links
// and manifests, once present, for WithImmutableTTL (default 10 min);
// tags, repositories, referrers and every NotFound for WithMutableTTL
// (default 1 s). That TTL is how long another replica's write may go
// unseen here; this replica's own writes are seen at once, and the blob
// links and manifests it linked are cached as written (the replica that
// filled a blob does not read its own links back from Azure). A tag older
// than the mutable TTL is still served while the tags generation, one
// record every tag change bumps, is the one it was read under
// (tagsgen.go): one request per mutable TTL vouches for every cached tag.
// A tag this replica wrote, and a tag or manifest a peer linked for it,
// are read back in the background (readahead.go), so the next pull through
// this replica finds them cached.
// Concurrent reads of one record share one request. Walks, listings, upload sessions
// and the reads inside Exclusive ask Azure.
package azmeta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Defaults of the options.
const (
	DefaultImmutableTTL = 10 * time.Minute
	DefaultMutableTTL   = time.Second
	DefaultCacheEntries = 100_000
	DefaultSettle       = 2 * time.Second
	DefaultConcurrency  = 16
)

// gateLease is how long the Exclusive holder's lease lasts unrenewed: the
// service's minimum, so writers wait at most that long for a dead holder.
const gateLease = azure.MinLease

// gateKeep is how often the holder renews the gate's lease: often enough
// that a holder whose lease was lost (broken by an operator, or expired
// while renewals failed) learns it and stops fn within a few seconds.
const gateKeep = 2 * time.Second

// Index is the metadata index on an Azure Blob Storage container. It is
// safe for concurrent use, by any number of replicas on one container.
type Index struct {
	ctr *azure.Container
	log *zap.Logger
	m   *metrics

	cache   *readCache
	tgen    tagsGen
	ahead   readAheads
	flight  singleflight.Group
	gate    gate
	ensured ensuredRepos
	keys    secrets

	immutableTTL, mutableTTL time.Duration
	entries                  int
	settle                   time.Duration
	conc                     int
	holder                   string
	now                      func() time.Time
	deferCheck               bool
}

var (
	_ meta.Store   = (*Index)(nil)
	_ Uploads      = (*Index)(nil)
	_ UploadLister = (*Index)(nil)
	_ Secrets      = (*Index)(nil)
)

// Option changes an Index's settings.
type Option func(*Index)

// WithImmutableTTL sets how long blob links and manifests found in Azure
// are served from this replica's cache (default 10 min; 0 caches none).
// It bounds how long this replica still sees a link another replica
// removed.
func WithImmutableTTL(d time.Duration) Option { return func(x *Index) { x.immutableTTL = d } }

// WithMutableTTL sets how long tags, repositories, referrers and NotFound
// answers are served from this replica's cache (default 1 s; 0 caches
// none). It bounds how long another replica's tag write goes unseen here.
func WithMutableTTL(d time.Duration) Option { return func(x *Index) { x.mutableTTL = d } }

// WithCacheEntries bounds the read cache (default 100,000 records; 0
// disables it).
func WithCacheEntries(n int) Option { return func(x *Index) { x.entries = n } }

// WithSettle sets how long Exclusive waits after announcing its section
// before it holds links back and fn runs (default 2 s), so that links
// other replicas were committing when it began are visible to fn; links
// go on meanwhile. Every replica on a container must use the same value.
func WithSettle(d time.Duration) Option { return func(x *Index) { x.settle = d } }

// WithConcurrency bounds the requests one call sends at once (batches of
// access times, removals; default 16).
func WithConcurrency(n int) Option { return func(x *Index) { x.conc = n } }

// WithHolder names this replica in the gate record while it holds
// Exclusive (default: host name and process ID), for operators.
func WithHolder(name string) Option { return func(x *Index) { x.holder = name } }

// WithDeferredCheck makes New contact nothing, for a replica that starts
// before its storage answers: the caller runs Check before it serves.
func WithDeferredCheck() Option { return func(x *Index) { x.deferCheck = true } }

// New returns the index on ctr. It lists the container once (Check), so
// that a container it may not read fails here rather than on the first
// request, unless WithDeferredCheck. reg may be nil (no metrics exported).
func New(ctx context.Context, ctr *azure.Container, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Index, error) {
	if ctr == nil {
		return nil, errors.New("azmeta: no container")
	}
	if log == nil {
		log = zap.NewNop()
	}
	host, _ := os.Hostname()
	x := &Index{
		ctr: ctr, log: log,
		immutableTTL: DefaultImmutableTTL, mutableTTL: DefaultMutableTTL, entries: DefaultCacheEntries,
		settle: DefaultSettle, conc: DefaultConcurrency,
		holder: fmt.Sprintf("%s/%d", host, os.Getpid()), now: time.Now,
	}
	for _, o := range opts {
		o(x)
	}
	if x.immutableTTL < 0 || x.mutableTTL < 0 || x.entries < 0 || x.settle < 0 {
		return nil, errors.New("azmeta: negative TTL, cache size or settle time")
	}
	if x.conc < 1 {
		return nil, fmt.Errorf("azmeta: concurrency %d: want at least 1", x.conc)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("azmeta: metrics: %w", err)
	}
	x.m = m
	x.cache = newReadCache(x.entries, x.now)
	if !x.deferCheck {
		if err := x.Check(ctx); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// Check lists the container's records once: it fails if the container
// cannot be reached or read.
func (x *Index) Check(ctx context.Context) error {
	if _, err := x.exists(ctx, prefix); err != nil {
		return fmt.Errorf("azmeta: container %s: %w", x.ctr.Name(), err)
	}
	return nil
}

// Close waits for the reads ahead under way (see readAhead); it releases
// nothing remote: every write is durable when it returns and no lease
// outlives the call that took it. The Index must not be used after Close.
func (x *Index) Close() error {
	x.closeReadAheads()
	return nil
}

// wrap names the operation in err, keeping meta.ErrNotFound and the
// container's sentinels reachable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("meta: %s: %w", op, err)
}
