// Package meta is airlock's metadata index, kept in badger: which tags and
// manifests each repository has, which blobs are linked to it, and cached
// referrers. Blob bytes live in the content store, never here.
package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airlock/airlock/internal/badgerutil"
	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// ErrNotFound means the record does not exist.
var ErrNotFound = errors.New("meta: not found")

// Origin says how content reached a repository.
type Origin string

// Origins.
const (
	OriginCache Origin = "cache" // filled from an upstream through a rule
	OriginPush  Origin = "push"  // pushed by a client
)

// Tag is a tag's current target.
type Tag struct {
	Digest    digest.Digest `json:"d"`
	MediaType string        `json:"mt"`
	Size      int64         `json:"s"`
	// FetchedAt is when the tag was last confirmed with the upstream.
	FetchedAt time.Time `json:"at"`
	Origin    Origin    `json:"o"`
}

// Manifest is a manifest linked to a repository.
type Manifest struct {
	MediaType    string        `json:"mt"`
	Size         int64         `json:"s"`
	ArtifactType string        `json:"at,omitempty"`
	Subject      digest.Digest `json:"sub,omitempty"`
	// Annotations are kept for manifests with a subject (referrers answers).
	Annotations map[string]string `json:"an,omitempty"`
	Refs        []digest.Digest   `json:"refs,omitempty"` // children and blobs it needs
	Origin      Origin            `json:"o"`
	Added       time.Time         `json:"t"`
}

// Blob is a blob linked to a repository.
type Blob struct {
	Size   int64     `json:"s"`
	Origin Origin    `json:"o"`
	Added  time.Time `json:"t"`
}

// Repo is a repository's record.
type Repo struct {
	Origin  Origin    `json:"o"`
	Created time.Time `json:"t"`
}

// Referrers is a cached upstream referrers response.
type Referrers struct {
	Body      []byte    `json:"b"`
	MediaType string    `json:"mt"`
	FetchedAt time.Time `json:"at"`
}

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
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log.Named("badger").Sugar()}).
		WithMetricsEnabled(false).
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
	if o.InMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true)
	}
	db, err := badgerutil.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", dir, err)
	}
	return &Index{db: db}, nil
}

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
			return ErrNotFound
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
func ensureRepo(txn *badger.Txn, repo string, o Origin, now time.Time) error {
	k := key(kRepo, repo)
	item, err := txn.Get(k)
	if err == nil {
		var r Repo
		if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
			return err
		}
		if r.Origin == OriginCache && o == OriginPush {
			return set(txn, k, Repo{Origin: OriginPush, Created: r.Created})
		}
		return nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	return set(txn, k, Repo{Origin: o, Created: now})
}

func wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("meta: %s: %w", op, err)
}

// Tag returns the tag's record, or ErrNotFound.
func (x *Index) Tag(repo, tag string) (Tag, error) {
	var t Tag
	return t, wrap("tag", x.get(key(kTag, repo, tag), &t))
}

// PutTag records a tag, creating the repository record if needed.
func (x *Index) PutTag(repo, tag string, t Tag) error {
	return wrap("put tag", x.durable(t.Origin, x.link(func(txn *badger.Txn) error {
		if err := ensureRepo(txn, repo, t.Origin, t.FetchedAt); err != nil {
			return err
		}
		return set(txn, key(kTag, repo, tag), t)
	})))
}

// durable makes a committed write of pushed content reach the disk before
// the caller acknowledges it; writes of cached content are left to
// badger's background flushing.
func (x *Index) durable(o Origin, err error) error {
	if err != nil || o != OriginPush {
		return err
	}
	return x.db.Sync()
}

// DeleteTag removes a tag; ErrNotFound if there was none.
func (x *Index) DeleteTag(repo, tag string) error {
	return wrap("delete tag", x.durable(OriginPush, x.deleteKey(key(kTag, repo, tag))))
}

func (x *Index) deleteKey(k []byte) error {
	return x.update(func(txn *badger.Txn) error {
		if _, err := txn.Get(k); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return txn.Delete(k)
	})
}

// Manifest returns a manifest linked to repo, or ErrNotFound.
func (x *Index) Manifest(repo string, d digest.Digest) (Manifest, error) {
	var m Manifest
	return m, wrap("manifest", x.get(key(kManifest, repo, d.String()), &m))
}

// PutManifest links a manifest (whose bytes are in the content store) to
// repo, and optionally points tag at it in the same transaction.
func (x *Index) PutManifest(repo string, d digest.Digest, m Manifest, tag string, t Tag) error {
	return wrap("put manifest", x.durable(m.Origin, x.link(func(txn *badger.Txn) error {
		if err := ensureRepo(txn, repo, m.Origin, m.Added); err != nil {
			return err
		}
		if err := set(txn, key(kManifest, repo, d.String()), m); err != nil {
			return err
		}
		if tag != "" {
			return set(txn, key(kTag, repo, tag), t)
		}
		return nil
	})))
}

// DeleteManifest unlinks a manifest; ErrNotFound if it was not linked.
func (x *Index) DeleteManifest(repo string, d digest.Digest) error {
	return wrap("delete manifest", x.durable(OriginPush, x.deleteKey(key(kManifest, repo, d.String()))))
}

// Blob returns a blob link, or ErrNotFound.
func (x *Index) Blob(repo string, d digest.Digest) (Blob, error) {
	var b Blob
	return b, wrap("blob", x.get(key(kBlob, repo, d.String()), &b))
}

// LinkBlob links a committed blob to repo.
func (x *Index) LinkBlob(repo string, d digest.Digest, b Blob) error {
	return wrap("link blob", x.durable(b.Origin, x.link(func(txn *badger.Txn) error {
		if err := ensureRepo(txn, repo, b.Origin, b.Added); err != nil {
			return err
		}
		return set(txn, key(kBlob, repo, d.String()), b)
	})))
}

// UnlinkBlob removes a blob link; ErrNotFound if there was none.
func (x *Index) UnlinkBlob(repo string, d digest.Digest) error {
	return wrap("unlink blob", x.durable(OriginPush, x.deleteKey(key(kBlob, repo, d.String()))))
}

// Repo returns the repository's record, or ErrNotFound.
func (x *Index) Repo(repo string) (Repo, error) {
	var r Repo
	return r, wrap("repo", x.get(key(kRepo, repo), &r))
}

// Referrers returns cached referrers of d in repo, or ErrNotFound.
func (x *Index) Referrers(repo string, d digest.Digest) (Referrers, error) {
	var r Referrers
	return r, wrap("referrers", x.get(key(kReferrers, repo, d.String()), &r))
}

// PutReferrers caches an upstream referrers response.
func (x *Index) PutReferrers(repo string, d digest.Digest, r Referrers) error {
	return wrap("put referrers", x.update(func(txn *badger.Txn) error {
		return set(txn, key(kReferrers, repo, d.String()), r)
	}))
}
