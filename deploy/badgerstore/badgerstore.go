// Package badgerstore keeps the control module's state in its own badger
// database, one key per resource, so that it survives restarts. A counter
// kept beside them is the state's version; badger lets one process open
// the database, and its transactions make a save conditional on it.
package badgerstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/badgerutil"
	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// ErrLocked means another process (a running airlock serve) has the
// database open; badger allows one process at a time.
var ErrLocked = errors.New("control state is in use by another process")

// Store is a deploy.Store on badger.
type Store struct {
	db *badger.DB
}

var (
	_ deploy.Store     = (*Store)(nil)
	_ deploy.Versioner = (*Store)(nil)
)

// Options tune the store.
type Options struct {
	// InMemory keeps everything in memory (tests).
	InMemory bool
}

// Open opens (creating if needed) the store in dir. It returns an error
// wrapping ErrLocked when another process holds dir.
func Open(dir string, log *zap.Logger, o Options) (*Store, error) {
	opts := badgerutil.Options(dir, log, o.InMemory).
		WithSyncWrites(true).
		WithMemTableSize(4 << 20).
		WithValueThreshold(64 << 10).
		WithNumMemtables(1).
		WithNumLevelZeroTables(1).
		WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(1 << 20).
		WithIndexCacheSize(1 << 20).
		WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(1)
	db, err := badgerutil.Open(opts)
	if err != nil {
		if badgerutil.IsLocked(err) {
			return nil, fmt.Errorf("control state %s: %w (badger allows one process at a time: stop airlock serve, or talk to it with --server)", dir, ErrLocked)
		}
		return nil, fmt.Errorf("control state: open %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("control state: close: %w", err)
	}
	return nil
}

const (
	kRegistry = "registry/"
	kEndpoint = "endpoint/"
	kRecord   = "dns/"
	kCluster  = "cluster/"
	// kVersion counts saves (decimal); absent before the first.
	kVersion = "meta/version"
)

// Load implements deploy.Store.
func (s *Store) Load(ctx context.Context) (*deploy.State, string, error) {
	st := deploy.NewState()
	var ver string
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if ver, err = version(txn); err != nil {
			return err
		}
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := decode(st, k, v); err != nil {
				return fmt.Errorf("control state: key %q: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return st, ver, nil
}

// Version implements deploy.Versioner.
func (s *Store) Version(ctx context.Context) (string, error) {
	var ver string
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		ver, err = version(txn)
		return err
	})
	return ver, err
}

// version reads the stored version, "" before the first save.
func version(txn *badger.Txn) (string, error) {
	item, err := txn.Get([]byte(kVersion))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("control state: version: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return "", fmt.Errorf("control state: version: %w", err)
	}
	return string(v), nil
}

func decode(st *deploy.State, k string, v []byte) error {
	switch {
	case strings.HasPrefix(k, kRegistry):
		return decodeInto(st.Registries, strings.TrimPrefix(k, kRegistry), v)
	case strings.HasPrefix(k, kEndpoint):
		return decodeInto(st.Endpoints, strings.TrimPrefix(k, kEndpoint), v)
	case strings.HasPrefix(k, kRecord):
		return decodeInto(st.Records, strings.TrimPrefix(k, kRecord), v)
	case strings.HasPrefix(k, kCluster):
		return decodeInto(st.Clusters, strings.TrimPrefix(k, kCluster), v)
	}
	return nil
}

// decodeInto puts the record v into m under name.
func decodeInto[T any](m map[string]*T, name string, v []byte) error {
	var x T
	if err := json.Unmarshal(v, &x); err != nil {
		return err
	}
	m[name] = &x
	return nil
}

// encode adds the records of m to want, keyed by prefix and name.
func encode[T any](want map[string][]byte, prefix string, m map[string]*T) error {
	for k, v := range m {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		want[prefix+k] = b
	}
	return nil
}

// Save implements deploy.Store: in one transaction, if the version is
// still base, it writes the records that changed, deletes those that are
// gone and counts the version up.
func (s *Store) Save(ctx context.Context, st *deploy.State, base string) (string, error) {
	want := map[string][]byte{}
	err := errors.Join(encode(want, kRegistry, st.Registries), encode(want, kEndpoint, st.Endpoints),
		encode(want, kRecord, st.Records), encode(want, kCluster, st.Clusters))
	if err != nil {
		return "", err
	}
	var next string
	err = s.db.Update(func(txn *badger.Txn) error {
		cur, err := version(txn)
		if err != nil {
			return err
		}
		if cur != base {
			return fmt.Errorf("control state is at version %q, not %q: %w", cur, base, deploy.ErrStale)
		}
		var n uint64
		if cur != "" {
			if n, err = strconv.ParseUint(cur, 10, 64); err != nil {
				return fmt.Errorf("control state: version %q: %w", cur, err)
			}
		}
		next = strconv.FormatUint(n+1, 10)
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		var gone [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if k == kVersion {
				continue
			}
			v, ok := want[k]
			if !ok {
				gone = append(gone, it.Item().KeyCopy(nil))
				continue
			}
			old, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			if bytes.Equal(old, v) {
				delete(want, k)
			}
		}
		it.Close()
		for _, k := range gone {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		for k, v := range want {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return txn.Set([]byte(kVersion), []byte(next))
	})
	if errors.Is(err, badger.ErrConflict) {
		// Another transaction of this process committed first.
		err = fmt.Errorf("control state: %w: %w", deploy.ErrStale, err)
	}
	if err != nil {
		return "", err
	}
	return next, nil
}
