package engine

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// defaultManifestCacheBytes bounds the in-memory manifest bodies.
const defaultManifestCacheBytes = 32 << 20

// bodyCache keeps recently served manifest bodies in memory, least recently
// used first out, so a warm manifest GET does not open a file. Bodies are
// content-addressed and verified before they enter, so an entry is never
// stale; whether a repository may see it is still decided by the index.
type bodyCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // of *bodyEntry, most recent first
	byDig map[digest.Digest]*list.Element
}

type bodyEntry struct {
	d    digest.Digest
	body []byte
}

func newBodyCache(max int64) *bodyCache {
	return &bodyCache{max: max, order: list.New(), byDig: map[digest.Digest]*list.Element{}}
}

// get returns the body of d; callers must not modify it.
func (c *bodyCache) get(d digest.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byDig[d]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*bodyEntry).body, true
}

// put adds a verified body.
func (c *bodyCache) put(d digest.Digest, body []byte) {
	n := int64(len(body))
	if n > c.max/8 {
		return // one big manifest must not flush the rest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byDig[d]; ok {
		return
	}
	c.byDig[d] = c.order.PushFront(&bodyEntry{d: d, body: body})
	c.size += n
	for c.size > c.max {
		el := c.order.Back()
		e := el.Value.(*bodyEntry)
		c.order.Remove(el)
		delete(c.byDig, e.d)
		c.size -= int64(len(e.body))
	}
}
