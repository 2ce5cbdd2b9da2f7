package azmeta

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
)

// tombTTL is how long the mark a write leaves in the cache is kept. Its
// expiry does not make the cache unsafe (see readCache), only less useful
// to reads that were in flight across the write.
const tombTTL = 10 * time.Second

// readTimeout bounds a shared read (one request for every caller waiting
// on it), whatever happens to the caller that started it.
const readTimeout = time.Minute

// readCache is this replica's bounded LRU of decoded records in front of
// Azure. Entries expire after a TTL chosen by the caller (long for
// immutable facts, short for mutable ones and for NotFound): that TTL is
// how long a write of another replica may go unseen here.
//
// This replica's own writes are exact, not time-based: after every write
// attempt the key is marked (a tomb stamped with a write counter), and a
// read stores its result only if no write of that key ended after the
// read began, so a value read before a write is never served after it.
// When a tomb leaves the cache (evicted or expired) the cache's floor
// rises to its stamp, and reads begun before the floor store nothing.
type readCache struct {
	max int
	now func() time.Time

	stamp atomic.Uint64 // counts ended writes

	mu    sync.Mutex
	ll    list.List // of *entry, most recently used first
	m     map[string]*list.Element
	floor uint64
}

type entry struct {
	key     string
	val     any  // the decoded record (a struct value)
	missing bool // a cached NotFound
	tomb    bool // a write's mark: never served
	stamp   uint64
	expires time.Time
	// A tag's: the tags generation read before the record (tagsgen.go),
	// and when the record was stored.
	gen azcore.ETag
	at  time.Time
}

func newReadCache(max int, now func() time.Time) *readCache {
	return &readCache{max: max, now: now, m: map[string]*list.Element{}}
}

// begin returns the stamp a read begins at; pass it to store.
func (c *readCache) begin() uint64 { return c.stamp.Load() }

// lookup returns a copy of key's live entry (a value or a NotFound, with
// the generation storeGen was given and when it stored it).
func (c *readCache) lookup(key string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[key]
	if el == nil {
		return entry{}, false
	}
	e := el.Value.(*entry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return entry{}, false
	}
	if e.tomb {
		return entry{}, false
	}
	c.ll.MoveToFront(el)
	return *e, true
}

// outdated returns the keys of the cached tags (values and NotFounds, not
// expired) stamped with a tags generation other than gen, the most
// recently used first, at most max.
func (c *readCache) outdated(gen azcore.ETag, max int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []string
	for el := c.ll.Front(); el != nil && len(out) < max; el = el.Next() {
		if e := el.Value.(*entry); !e.tomb && e.gen != "" && e.gen != gen && now.Before(e.expires) {
			out = append(out, e.key)
		}
	}
	return out
}

// store caches what a read begun at begun found, for ttl, unless this
// replica wrote key since the read began.
func (c *readCache) store(key string, begun uint64, val any, missing bool, ttl time.Duration) {
	c.storeGen(key, begun, val, missing, ttl, "")
}

// storeGen is store for a tag read under the tags generation gen.
func (c *readCache) storeGen(key string, begun uint64, val any, missing bool, ttl time.Duration, gen azcore.ETag) {
	if ttl <= 0 || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if begun < c.floor {
		return
	}
	if el := c.m[key]; el != nil {
		if el.Value.(*entry).stamp > begun {
			return // a write ended, or a later read stored, after this read began
		}
		c.remove(el)
	}
	now := c.now()
	c.add(&entry{key: key, val: val, missing: missing, stamp: begun, expires: now.Add(ttl), gen: gen, at: now})
}

// invalidate marks key after a write to it (successful or not: its outcome
// may be unknown) and returns the write's stamp.
func (c *readCache) invalidate(key string) uint64 {
	if c.max <= 0 {
		return 0
	}
	s := c.stamp.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[key]; el != nil {
		c.ll.Remove(el)
		delete(c.m, key)
	}
	c.add(&entry{key: key, tomb: true, stamp: s, expires: c.now().Add(tombTTL)})
	return s
}

// add puts e first and evicts the least recently used beyond max. The
// caller holds mu.
func (c *readCache) add(e *entry) {
	c.m[e.key] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		c.remove(c.ll.Back())
	}
}

// remove drops an entry; a tomb leaving raises the floor. The caller holds
// mu.
func (c *readCache) remove(el *list.Element) {
	e := el.Value.(*entry)
	c.ll.Remove(el)
	delete(c.m, e.key)
	if e.tomb && e.stamp > c.floor {
		c.floor = e.stamp
	}
}

// len is the number of entries (tombs included).
func (c *readCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

type freshKey struct{}

// WithoutCache returns a context whose reads through an Index skip this
// replica's read cache and ask Azure. The context an Exclusive section
// hands its fn is one: the collector decides on the shared truth, not on
// what this replica saw a while ago.
func WithoutCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

func fresh(ctx context.Context) bool { v, _ := ctx.Value(freshKey{}).(bool); return v }

// read returns the record name of kind, decoded into T, from the read
// cache or (one request for every concurrent caller) from Azure. Errors
// wrap meta.ErrNotFound if there is no such record.
func read[T any](ctx context.Context, x *Index, kind, name string) (T, error) {
	var zero T
	if fresh(ctx) {
		var rec T
		_, err := x.getJSON(ctx, name, &rec)
		return rec, err
	}
	if e, ok := x.cache.lookup(name); ok && x.stillCurrent(ctx, e.gen, e.at) {
		x.m.hit[kind].Inc()
		if e.missing {
			return zero, fmt.Errorf("azmeta: %s: %w", name, meta.ErrNotFound)
		}
		return e.val.(T), nil
	}
	x.m.miss[kind].Inc()
	return load[T](ctx, x, kind, name)
}

// load reads the record name of kind from Azure into the read cache (one
// request for every concurrent caller) and returns it decoded into T.
func load[T any](ctx context.Context, x *Index, kind, name string) (T, error) {
	var zero T
	ch := x.flight.DoChan(name, func() (any, error) {
		begun := x.cache.begin()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		gen := x.tagStamp(rctx, kind) // before the record: see tagsgen.go
		var rec T
		_, err := x.getJSON(rctx, name, &rec)
		switch {
		case err == nil:
			x.cache.storeGen(name, begun, rec, false, x.ttl(kind, gen), gen)
		case errors.Is(err, meta.ErrNotFound):
			x.cache.storeGen(name, begun, nil, true, x.ttl("", gen), gen)
		}
		return rec, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// wrote tells the read cache that this replica wrote (or tried to write)
// the record name: later reads do not get what was read before. It
// returns the write's stamp (see cacheWritten).
func (x *Index) wrote(name string) uint64 {
	s := x.cache.invalidate(name)
	x.flight.Forget(name) // a read in flight began before the write
	return s
}

// cacheWritten caches v, which this replica's write stamped stamp put as the
// record name of kind (an immutable one: a blob link, a manifest), as a
// read of it right after the write would: the replica that filled a blob
// serves it next without asking Azure for what it just wrote. v goes
// through JSON as a read's record does. Nothing is cached if another write
// of name ended since (its mark stays).
func cacheWritten[T any](x *Index, kind, name string, stamp uint64, v T) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	var rec T
	if json.Unmarshal(b, &rec) != nil {
		return
	}
	x.cache.store(name, stamp, rec, false, x.ttl(kind, ""))
}

// ttl is how long a record of kind found in Azure is cached ("" for a
// NotFound): blob links and manifests by digest are immutable facts once
// present; tags, repositories and referrers move. A tag (or a tag's
// NotFound) read under a tags generation gen is kept until tagsMaxAge,
// and served after the mutable TTL only while the generation holds
// (stillCurrent).
func (x *Index) ttl(kind string, gen azcore.ETag) time.Duration {
	switch {
	case gen != "":
		return max(tagsMaxAge, x.mutableTTL)
	case kind == kBlob || kind == kManifest:
		return x.immutableTTL
	}
	return x.mutableTTL
}

func kindLabel(kind string) string {
	switch kind {
	case kTag:
		return "tag"
	case kManifest:
		return "manifest"
	case kBlob:
		return "blob"
	case kRepo:
		return "repo"
	case kReferrers:
		return "referrers"
	}
	return kind
}
