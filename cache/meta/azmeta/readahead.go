package azmeta

import (
	"context"
	"sync"

	"github.com/airlock/airlock/cache/meta"
)

// readAheads are the reads readAhead runs in the background.
type readAheads struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// readAhead reads the record name of kind (a tag or a manifest) into the
// read cache in the background: one this replica has just written, or one
// a peer linked for it, which its cache holds no value of (only the
// write's mark). The next pull through this replica then finds it cached
// instead of asking Azure on its way; the request is the one that pull
// would have sent. Close waits for the reads under way.
func (x *Index) readAhead(kind, name string) {
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
		switch kind { // an error leaves the cache as it was: the next read asks
		case kTag:
			_, _ = read[meta.Tag](ctx, x, kind, name)
		case kManifest:
			_, _ = read[meta.Manifest](ctx, x, kind, name)
		}
	}()
}

// closeReadAheads stops new reads ahead and waits for those under way.
func (x *Index) closeReadAheads() {
	ra := &x.ahead
	ra.mu.Lock()
	ra.closed = true
	ra.mu.Unlock()
	ra.wg.Wait()
}
