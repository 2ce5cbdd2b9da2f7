// Package badgermeta is the embedded implementation of the metadata
// contract (cache/meta), kept in badger in one directory. Records are
// JSON under keys "<kind>\x00<repo>\x00<name>"; a read cache serves the hot
// records (a warm manifest HEAD, a warm blob GET) without a transaction.
package badgermeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/internal/badgerutil"
	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Index is the badger-backed metadata index.
type Index struct {
	db    *badger.DB
	reads readCache
	// gate is held shared by writes that add links and exclusively by
	// Exclusive (see gate.go).
	gate sync.RWMutex
}

// Options tune the index.
type Options struct {
	// InMemory keeps everything in memory (tests).
	InMemory bool
}

// Open opens (creating if needed) the index in dir.
func Open(dir string, log *zap.Logger, o Options) (*Index, error) {
	opts := badgerutil.Options(dir, log, o.InMemory).
		// Cached content can be fetched again: its records are not
		// fsynced one by one (a power cut loses at most the last ones; the
		// startup check and the GC reconcile). Pushed content and deletes a
		// client asked for are made durable before they are acknowledged
		// (durable below).
		WithSyncWrites(false).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2)
	db, err := badgerutil.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", dir, err)
	}
	return &Index{db: db}, nil
}

var _ meta.Store = (*Index)(nil)

// Close flushes and closes the index.
func (x *Index) Close() error {
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("meta: close: %w", err)
	}
	return nil
}

const sep = "\x00"

func key(kind string, parts ...string) []byte {
	var b bytes.Buffer
	b.WriteString(kind)
	for _, p := range parts {
		b.WriteString(sep)
		b.WriteString(p)
	}
	return b.Bytes()
}

const (
	kTag       = "t"
	kManifest  = "m"
	kBlob      = "b"
	kRepo      = "r"
	kReferrers = "f"
)

// update runs fn in a read-write transaction, retrying when a concurrent
// transaction committed a conflicting write first.
// Every write ends the read cache's generation.
func (x *Index) update(fn func(txn *badger.Txn) error) error {
	defer x.reads.invalidate()
	var err error
	for range 16 {
		if err = x.db.Update(fn); !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}

// get reads one record into v (a pointer), from the read cache when the
// index has not been written since it was cached.
func (x *Index) get(k []byte, v any) error {
	gen := x.reads.current()
	if gen.load(k, v) {
		return nil
	}
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return meta.ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	})
	if err == nil {
		gen.store(k, v)
	}
	return err
}

func set(txn *badger.Txn, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(k, b)
}

// ensureRepo records the repository on first content.
func ensureRepo(txn *badger.Txn, repo string, o meta.Origin, now time.Time) error {
	k := key(kRepo, repo)
	item, err := txn.Get(k)
	if err == nil {
		var r meta.Repo
		if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
			return err
		}
		if r.Origin == meta.OriginCache && o == meta.OriginPush {
			return set(txn, k, meta.Repo{Origin: meta.OriginPush, Created: r.Created})
		}
		return nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	return set(txn, k, meta.Repo{Origin: o, Created: now})
}

func wrap(op string, err error) error {
	if err == nil || errors.Is(err, meta.ErrNotFound) {
		return err
	}
	return fmt.Errorf("meta: %s: %w", op, err)
}

// durable makes a committed write of pushed content reach the disk before
// the caller acknowledges it; writes of cached content are left to
// badger's background flushing.
func (x *Index) durable(o meta.Origin, err error) error {
	if err != nil || o != meta.OriginPush {
		return err
	}
	return x.db.Sync()
}

// deleteKey deletes k, or returns ErrNotFound if it does not exist.
func (x *Index) deleteKey(k []byte) error {
	return x.update(func(txn *badger.Txn) error {
		if _, err := txn.Get(k); errors.Is(err, badger.ErrKeyNotFound) {
			return meta.ErrNotFound
		} else if err != nil {
			return err
		}
		return txn.Delete(k)
	})
}
