package evict

import (
	"context"
	"sync"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// Tracker remembers when each repository's manifests and blobs were last
// served. Touch only updates a map in memory; Flush writes what changed to
// the index in one batch, so the request path never waits for the disk.
type Tracker struct {
	now func() time.Time

	mu    sync.Mutex
	dirty map[accessKey]time.Time
}

type accessKey struct {
	repo string
	d    digest.Digest
}

// NewTracker returns an empty tracker.
func NewTracker(now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{now: now, dirty: map[accessKey]time.Time{}}
}

// Touch records an access now. It implements engine.AccessRecorder.
func (t *Tracker) Touch(repo string, d digest.Digest) {
	at := t.now()
	t.mu.Lock()
	t.dirty[accessKey{repo, d}] = at
	t.mu.Unlock()
}

// Flush writes the accesses recorded since the last flush to index. On
// failure they are kept for the next one.
func (t *Tracker) Flush(ctx context.Context, index meta.AccessRecorder) error {
	t.mu.Lock()
	taken := t.dirty
	t.dirty = make(map[accessKey]time.Time, len(taken))
	t.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	as := make([]meta.Access, 0, len(taken))
	for k, at := range taken {
		as = append(as, meta.Access{Repo: k.repo, Digest: k.d, At: at})
	}
	if err := index.PutAccess(ctx, as); err != nil {
		t.mu.Lock()
		for k, at := range taken {
			if cur, ok := t.dirty[k]; !ok || cur.Before(at) {
				t.dirty[k] = at
			}
		}
		t.mu.Unlock()
		return err
	}
	return nil
}

// forget drops pending accesses of removed links, so they are not written
// back after eviction removed them.
func (t *Tracker) forget(keys []accessKey) {
	t.mu.Lock()
	for _, k := range keys {
		delete(t.dirty, k)
	}
	t.mu.Unlock()
}
