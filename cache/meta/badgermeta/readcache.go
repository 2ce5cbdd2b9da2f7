package badgermeta

import (
	"reflect"
	"sync"
	"sync/atomic"
)

// maxCachedRecords bounds one generation of the read cache.
const maxCachedRecords = 1 << 17

// readCache keeps decoded records for the hot paths (a warm manifest HEAD,
// a warm blob GET) so that they skip a badger transaction. It is exact, not
// time-based: every write starts a new, empty generation, and a reader only
// stores into the generation it started in, so a value read before a write
// is never served after it.
type readCache struct {
	gen atomic.Pointer[generation]
}

type generation struct {
	m sync.Map // string(key) -> decoded record (a struct value)
	n atomic.Int64
}

func (c *readCache) current() *generation {
	if g := c.gen.Load(); g != nil {
		return g
	}
	c.gen.CompareAndSwap(nil, &generation{})
	return c.gen.Load()
}

// invalidate starts a new generation; call it after every committed write.
func (c *readCache) invalidate() { c.gen.Store(&generation{}) }

// load copies the cached record for k into v (a pointer to its type).
func (g *generation) load(k []byte, v any) bool {
	cached, ok := g.m.Load(string(k))
	if !ok {
		return false
	}
	dst := reflect.ValueOf(v).Elem()
	src := reflect.ValueOf(cached)
	if src.Type() != dst.Type() {
		return false
	}
	dst.Set(src)
	return true
}

// store caches the record v (a pointer) points at.
func (g *generation) store(k []byte, v any) {
	if g.n.Load() >= maxCachedRecords {
		return
	}
	if _, loaded := g.m.LoadOrStore(string(k), reflect.ValueOf(v).Elem().Interface()); !loaded {
		g.n.Add(1)
	}
}
