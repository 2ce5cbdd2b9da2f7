package azmeta

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
)

// readAheads are the reads readAhead runs in the background.
type readAheads struct {
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	refresh *time.Timer // tagsMoved's, while armed
}

// readAhead reads the record name of kind (a tag or a manifest) into the
// read cache in the background: one this replica has just written, or one
// a peer linked for it, which its cache holds no value of (only the
// write's mark). The next pull through this replica then finds it cached
// instead of asking Azure on its way; the request is the one that pull
// would have sent. Close waits for the reads under way.
func (x *Index) readAhead(kind, name string) {
	x.background(func(ctx context.Context) {
		switch kind { // an error leaves the cache as it was: the next read asks
		case kTag:
			_, _ = read[meta.Tag](ctx, x, kind, name)
		case kManifest:
			_, _ = read[meta.Manifest](ctx, x, kind, name)
		}
	})
}

// Refreshing outdated tags: at most maxRefresh tags, once the generation
// has not moved for refreshDelay (a rollout bumps it once per tag it
// fills; reading again after every bump would read the same tags many
// times).
const (
	maxRefresh   = 32
	refreshDelay = 200 * time.Millisecond
)

// tagsMoved notes that another replica moved the tags generation: the
// tags this replica cached are read again in the background once it has
// stopped moving for refreshDelay, so that the next pull finds them
// current instead of reading them one per image of its set in turn.
func (x *Index) tagsMoved() {
	ra := &x.ahead
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.closed || x.entries <= 0 {
		return
	}
	if ra.refresh != nil {
		ra.refresh.Reset(refreshDelay)
		return
	}
	ra.refresh = time.AfterFunc(refreshDelay, func() {
		ra.mu.Lock()
		ra.refresh = nil
		ra.mu.Unlock()
		if r := x.tgen.latest(); r.etag != "" {
			x.refreshTags(r.etag)
		}
	})
}

// refreshTags reads again, in the background, the cached tags that the
// tags generation gen outdated (the most recently used first, at most
// maxRefresh).
func (x *Index) refreshTags(gen azcore.ETag) {
	for _, name := range x.cache.outdated(gen, maxRefresh) {
		x.background(func(ctx context.Context) {
			if e, ok := x.cache.lookup(name); ok && e.gen == gen {
				return // read again meanwhile, by a pull
			}
			_, _ = load[meta.Tag](ctx, x, kTag, name)
		})
	}
}

// background runs fn with a bounded context unless the index is closing
// or has no read cache; Close waits for it.
func (x *Index) background(fn func(ctx context.Context)) {
	if x.entries <= 0 {
		return
	}
	ra := &x.ahead
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.closed {
		return
	}
	ra.wg.Add(1)
	go func() {
		defer ra.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		fn(ctx)
	}()
}

// closeReadAheads stops new reads ahead and waits for those under way.
func (x *Index) closeReadAheads() {
	ra := &x.ahead
	ra.mu.Lock()
	ra.closed = true
	if ra.refresh != nil {
		ra.refresh.Stop()
	}
	ra.mu.Unlock()
	ra.wg.Wait()
}
