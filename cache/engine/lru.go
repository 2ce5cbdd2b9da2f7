package engine

import (
	"container/list"
	"sync"
)

// defaultManifestCacheBytes bounds the in-memory manifest bodies.
const defaultManifestCacheBytes = 32 << 20

// lru keeps values in memory up to a total cost, least recently used first
// out. The engine keeps recently served manifest bodies in one (keyed by
// digest, so a warm manifest GET does not open a file: bodies are verified
// before they enter and never go stale; whether a repository may see one
// is still decided by the index) and upstream tag listings in another.
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int64
	size  int64
	cost  func(V) int64
	order *list.List // of *lruEntry, most recent first
	byKey map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	k K
	v V
	n int64
}

func newLRU[K comparable, V any](max int64, cost func(V) int64) *lru[K, V] {
	return &lru[K, V]{max: max, cost: cost, order: list.New(), byKey: map[K]*list.Element{}}
}

// get returns the value of k; callers must not modify it.
func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[K, V]).v, true
}

// put adds or replaces the value of k. A value costing more than an eighth
// of the whole is not kept: one big value must not flush the rest.
func (c *lru[K, V]) put(k K, v V) {
	n := c.cost(v)
	if n > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[k]; ok {
		c.remove(el)
	}
	c.byKey[k] = c.order.PushFront(&lruEntry[K, V]{k: k, v: v, n: n})
	c.size += n
	for c.size > c.max {
		c.remove(c.order.Back())
	}
}

func (c *lru[K, V]) remove(el *list.Element) {
	e := el.Value.(*lruEntry[K, V])
	c.order.Remove(el)
	delete(c.byKey, e.k)
	c.size -= e.n
}
