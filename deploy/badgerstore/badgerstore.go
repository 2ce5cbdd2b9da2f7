// Package badgerstore keeps the control module's state in its own badger
// database, one key per resource, so that it survives restarts.
package badgerstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

var _ deploy.Store = (*Store)(nil)

// Options tune the store.
type Options struct {
	// InMemory keeps everything in memory (tests).
	InMemory bool
}

// Open opens (creating if needed) the store in dir. It returns an error
// wrapping ErrLocked when another process holds dir.
func Open(dir string, log *zap.Logger, o Options) (*Store, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerutil.Logger(log)).
		WithMetricsEnabled(false).
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
	if o.InMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true)
	}
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
)

// Load implements deploy.Store.
func (s *Store) Load(ctx context.Context) (*deploy.State, error) {
	st := deploy.NewState()
	err := s.db.View(func(txn *badger.Txn) error {
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
		return nil, err
	}
	return st, nil
}

func decode(st *deploy.State, k string, v []byte) error {
	switch {
	case strings.HasPrefix(k, kRegistry):
		var r deploy.Registry
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		st.Registries[strings.TrimPrefix(k, kRegistry)] = &r
	case strings.HasPrefix(k, kEndpoint):
		var e deploy.PrivateEndpoint
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		st.Endpoints[strings.TrimPrefix(k, kEndpoint)] = &e
	case strings.HasPrefix(k, kRecord):
		var r deploy.DNSRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		st.Records[strings.TrimPrefix(k, kRecord)] = &r
	case strings.HasPrefix(k, kCluster):
		var c deploy.Cluster
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		st.Clusters[strings.TrimPrefix(k, kCluster)] = &c
	}
	return nil
}

// Save implements deploy.Store: in one transaction it writes the records
// that changed and deletes those that are gone.
func (s *Store) Save(ctx context.Context, st *deploy.State) error {
	want := map[string][]byte{}
	put := func(prefix, k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		want[prefix+k] = b
		return nil
	}
	for k, v := range st.Registries {
		if err := put(kRegistry, k, v); err != nil {
			return err
		}
	}
	for k, v := range st.Endpoints {
		if err := put(kEndpoint, k, v); err != nil {
			return err
		}
	}
	for k, v := range st.Records {
		if err := put(kRecord, k, v); err != nil {
			return err
		}
	}
	for k, v := range st.Clusters {
		if err := put(kCluster, k, v); err != nil {
			return err
		}
	}
	return s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		var gone [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
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
		return nil
	})
}
