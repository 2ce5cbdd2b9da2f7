package azstore

import (
	"container/list"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// spool is the bounded local copy of recently used blobs: verified files
// under <dir>/<algorithm>/<hex>, so a warm Open hands out an *os.File
// (sendfile). Least recently opened files are removed to stay under limit;
// a reader keeps the file it opened even after that.
type spool struct {
	dir   string
	limit int64
	m     *metrics

	mu      sync.Mutex
	used    int64 // bytes of entries plus reservations of running downloads
	lru     list.List
	entries map[digest.Digest]*list.Element // of *entry
	loads   map[digest.Digest]*download     // running downloads
}

// entry is one verified file in the spool.
type entry struct {
	d       digest.Digest
	size    int64
	mod     time.Time // the blob's Last-Modified in the container
	checked time.Time // when the container last confirmed the blob exists
}

// newSpool indexes the files a previous run left in dir (they were verified
// and synced before they were renamed into place); their existence in the
// container is confirmed again on first use.
func newSpool(dir string, limit int64, m *metrics) (*spool, error) {
	s := &spool{dir: dir, limit: limit, m: m, entries: map[digest.Digest]*list.Element{}, loads: map[digest.Digest]*download{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("azstore: spool: %w", err)
	}
	var found []*entry
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(filepath.Base(filepath.Dir(p))), e.Name())
		fi, ierr := e.Info()
		if content.ValidateDigest(d) != nil || ierr != nil || filepath.Dir(filepath.Dir(p)) != dir {
			return os.Remove(p) // not a spooled blob
		}
		found = append(found, &entry{d: d, size: fi.Size(), mod: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("azstore: spool: %w", err)
	}
	// Which files were used last is not known after a restart: the newest
	// blobs go first, the oldest are evicted first.
	sort.Slice(found, func(a, b int) bool { return found[a].mod.After(found[b].mod) })
	for _, e := range found {
		s.entries[e.d] = s.lru.PushBack(e)
		s.used += e.size
	}
	s.mu.Lock()
	s.evictLocked(0)
	s.mu.Unlock()
	return s, nil
}

func (s *spool) path(d digest.Digest) string {
	return filepath.Join(s.dir, string(d.Algorithm()), d.Encoded())
}

// open returns the spooled file of d and its entry (a copy), or a nil file
// if d is not spooled. The file is opened outside the lock: a spooled
// file is only ever replaced by one with the same verified bytes, and one
// evicted meanwhile is not found (the caller downloads it again).
func (s *spool) open(d digest.Digest) (*os.File, entry) {
	s.mu.Lock()
	el, ok := s.entries[d]
	if !ok {
		s.mu.Unlock()
		return nil, entry{}
	}
	s.lru.MoveToFront(el)
	e := *el.Value.(*entry)
	s.mu.Unlock()
	f, err := os.Open(s.path(d))
	if err != nil {
		s.mu.Lock()
		if s.entries[d] == el { // removed behind our back: forget it
			s.removeLocked(el)
		}
		s.mu.Unlock()
		return nil, entry{}
	}
	return f, e
}

// confirmed records that the container still has d, as of mod.
func (s *spool) confirmed(d digest.Digest, mod, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[d]; ok {
		e := el.Value.(*entry)
		e.mod, e.checked = mod, now
	}
}

// drop forgets d and removes its file (the blob was deleted).
func (s *spool) drop(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[d]; ok {
		s.removeLocked(el)
	}
}

// reserve makes room for size more bytes, evicting the least recently
// used files, and reports whether it could.
func (s *spool) reserve(size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reserveLocked(size)
}

func (s *spool) reserveLocked(size int64) bool {
	if size > s.limit {
		return false
	}
	s.evictLocked(size)
	if s.used+size > s.limit {
		return false
	}
	s.used += size
	s.m.spoolBytes.Set(float64(s.used))
	return true
}

// unreserve gives back a reservation that did not become an entry.
func (s *spool) unreserve(size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= size
	s.m.spoolBytes.Set(float64(s.used))
}

// add puts the verified file src in place as d's, taking over a
// reservation of e.size bytes. With link the file is hard-linked (the
// caller keeps using src), else renamed. If d is spooled already, or the
// file cannot be put in place, the reservation is given back (and a file
// to rename is removed).
func (s *spool) add(src string, e entry, link bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, have := s.entries[e.d]
	var err error
	if !have {
		err = s.place(src, e, link)
	}
	if have || err != nil {
		s.used -= e.size
		s.m.spoolBytes.Set(float64(s.used))
		if !link {
			os.Remove(src)
		}
		return err
	}
	s.entries[e.d] = s.lru.PushFront(&e)
	return nil
}

// place links or renames src to d's file and sets its time to the blob's
// Last-Modified (kept across restarts).
func (s *spool) place(src string, e entry, link bool) error {
	dst := s.path(e.d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("azstore: spool: %w", err)
	}
	var err error
	if link {
		os.Remove(dst) // an unindexed leftover; the new file is verified
		err = os.Link(src, dst)
	} else {
		err = os.Rename(src, dst)
	}
	if err == nil {
		err = os.Chtimes(dst, time.Time{}, e.mod)
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("azstore: spool %s: %w", e.d, err)
	}
	return nil
}

// evictLocked removes least recently used files until size more bytes fit.
func (s *spool) evictLocked(size int64) {
	for s.used+size > s.limit {
		el := s.lru.Back()
		if el == nil {
			return
		}
		s.removeLocked(el)
		s.m.evictions.Inc()
	}
}

// removeLocked forgets an entry and removes its file.
func (s *spool) removeLocked(el *list.Element) {
	e := el.Value.(*entry)
	s.lru.Remove(el)
	delete(s.entries, e.d)
	s.used -= e.size
	s.m.spoolBytes.Set(float64(s.used))
	// If this fails the file stays on disk, unaccounted, until the next
	// start; the entry is gone, so it is never served again.
	os.Remove(s.path(e.d))
}

// endLoad forgets a download that ended.
func (s *spool) endLoad(dl *download) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loads[dl.d] == dl {
		delete(s.loads, dl.d)
	}
}
