package badgermeta

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
)

// removeBatch bounds the keys deleted in one transaction.
const removeBatch = 512

// Remove implements meta.Remover, in transactions of at most removeBatch
// keys.
func (x *Index) Remove(ctx context.Context, r meta.Removal) error {
	var keys [][]byte
	for _, t := range r.Tags {
		keys = append(keys, key(kTag, r.Repo, t))
	}
	for _, d := range r.Manifests {
		keys = append(keys, key(kManifest, r.Repo, d.String()), key(kReferrers, r.Repo, d.String()), key(kAccess, r.Repo, d.String()))
	}
	for _, d := range r.Blobs {
		keys = append(keys, key(kBlob, r.Repo, d.String()), key(kAccess, r.Repo, d.String()))
	}
	for len(keys) > 0 {
		n := min(len(keys), removeBatch)
		batch := keys[:n]
		keys = keys[n:]
		err := x.update(func(txn *badger.Txn) error {
			for _, k := range batch {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return wrap("remove", err)
		}
	}
	return wrap("remove", x.update(func(txn *badger.Txn) error { return dropIfEmpty(txn, r.Repo) }))
}

// dropIfEmpty removes a cached repository's record when it holds nothing.
func dropIfEmpty(txn *badger.Txn, repo string) error {
	for _, kind := range []string{kTag, kManifest, kBlob} {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: key(kind, repo, "")})
		it.Rewind()
		found := it.Valid()
		it.Close()
		if found {
			return nil
		}
	}
	item, err := txn.Get(key(kRepo, repo))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec meta.Repo
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
		return err
	}
	if rec.Origin != meta.OriginCache {
		return nil
	}
	return txn.Delete(key(kRepo, repo))
}
