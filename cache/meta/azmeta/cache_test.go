package azmeta

import (
	"testing"
	"testing/synctest"
	"time"
)

// The cache's tests run in a synctest bubble: time.Sleep moves the clock
// the TTLs are measured on, at once.

func TestReadCacheTTL(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testReadCacheTTL)
}

func testReadCacheTTL(t *testing.T) {
	c := newReadCache(10, time.Now)
	c.store("k", c.begin(), "v", false, time.Second)
	c.store("gone", c.begin(), nil, true, time.Second)
	if v, missing, ok := c.load("k"); !ok || missing || v != "v" {
		t.Fatalf("load k: %v %v %v", v, missing, ok)
	}
	if _, missing, ok := c.load("gone"); !ok || !missing {
		t.Fatalf("a cached NotFound: missing=%v ok=%v", missing, ok)
	}
	time.Sleep(time.Second)
	if _, _, ok := c.load("k"); ok {
		t.Fatal("served past its TTL")
	}
	if _, _, ok := c.load("gone"); ok {
		t.Fatal("NotFound served past its TTL")
	}
	if c.len() != 0 {
		t.Fatalf("%d expired entries kept", c.len())
	}
	c.store("zero", c.begin(), "v", false, 0)
	if _, _, ok := c.load("zero"); ok {
		t.Fatal("a TTL of 0 cached")
	}
}

// A read that began before this replica's write ended never stores what
// it read; one that began after does.
func TestReadCacheWriteWins(t *testing.T) {
	t.Parallel()
	c := newReadCache(10, time.Now)
	c.store("k", c.begin(), "old", false, time.Hour)
	before := c.begin() // a read in flight across the write
	c.invalidate("k")
	if _, _, ok := c.load("k"); ok {
		t.Fatal("the value read before the write is served after it")
	}
	c.store("k", before, "old", false, time.Hour)
	if _, _, ok := c.load("k"); ok {
		t.Fatal("a read begun before the write stored its value")
	}
	after := c.begin()
	c.store("k", after, "new", false, time.Hour)
	if v, _, ok := c.load("k"); !ok || v != "new" {
		t.Fatalf("a read begun after the write: %v %v", v, ok)
	}
	// A read that began before a later read stored does not overwrite it.
	c.store("k", before, "old", false, time.Hour)
	if v, _, _ := c.load("k"); v != "new" {
		t.Fatalf("an older read replaced a newer one: %v", v)
	}
}

// A write's value, stored at the write's stamp, replaces the write's own
// mark, but never the mark of a write of the key that ended after it, nor
// a value once the floor passed its stamp.
func TestReadCacheWrittenValue(t *testing.T) {
	t.Parallel()
	c := newReadCache(10, time.Now)
	s := c.invalidate("k")
	c.store("k", s, "written", false, time.Hour)
	if v, _, ok := c.load("k"); !ok || v != "written" {
		t.Fatalf("the write's value: %v %v", v, ok)
	}
	first := c.invalidate("k")
	second := c.invalidate("k")
	c.store("k", first, "first", false, time.Hour)
	if _, _, ok := c.load("k"); ok {
		t.Fatal("an earlier write's value replaced the mark of a later write")
	}
	c.store("k", second, "second", false, time.Hour)
	if v, _, ok := c.load("k"); !ok || v != "second" {
		t.Fatalf("the last write's value: %v %v", v, ok)
	}
	if s := newReadCache(0, time.Now).invalidate("k"); s != 0 {
		t.Fatalf("a disabled cache stamped a write %d", s)
	}
}

// The cache holds at most max entries, least recently used out first; a
// write's mark leaving raises the floor, so reads in flight across that
// write still store nothing.
func TestReadCacheBound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testReadCacheBound)
}

func testReadCacheBound(t *testing.T) {
	c := newReadCache(3, time.Now)
	for _, k := range []string{"a", "b", "c"} {
		c.store(k, c.begin(), k, false, time.Hour)
	}
	c.load("a") // b is now the least recently used
	c.store("d", c.begin(), "d", false, time.Hour)
	if _, _, ok := c.load("b"); ok {
		t.Fatal("the least recently used entry stayed")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, _, ok := c.load(k); !ok {
			t.Fatalf("%s went", k)
		}
	}
	before := c.begin()
	c.invalidate("w")
	time.Sleep(tombTTL) // the mark expires
	c.load("w")
	c.store("w", before, "stale", false, time.Hour)
	if _, _, ok := c.load("w"); ok {
		t.Fatal("a read begun before a write whose mark expired stored its value")
	}
	off := newReadCache(0, time.Now)
	off.store("k", off.begin(), "v", false, time.Hour)
	off.invalidate("k")
	if _, _, ok := off.load("k"); ok || off.len() != 0 {
		t.Fatal("a disabled cache holds entries")
	}
}

// load returns the cached record of key; ok is false on a miss, missing is
// true for a cached NotFound.
func (c *readCache) load(key string) (val any, missing, ok bool) {
	e, ok := c.lookup(key)
	return e.val, e.missing, ok
}
