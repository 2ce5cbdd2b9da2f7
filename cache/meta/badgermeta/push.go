package badgermeta

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
)

// RemoveManifest implements meta.ManifestStore, in one transaction.
func (x *Index) RemoveManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	var removed []string
	err := x.update(func(txn *badger.Txn) error {
		removed = removed[:0]
		mk := key(kManifest, repo, d.String())
		if _, err := txn.Get(mk); errors.Is(err, badger.ErrKeyNotFound) {
			return meta.ErrNotFound
		} else if err != nil {
			return err
		}
		prefix := key(kTag, repo, "")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		var drop [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			var t meta.Tag
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				it.Close()
				return err
			}
			if t.Digest == d {
				drop = append(drop, it.Item().KeyCopy(nil))
				removed = append(removed, string(it.Item().Key()[len(prefix):]))
			}
		}
		it.Close()
		for _, k := range drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete(mk)
	})
	return removed, wrap("remove manifest", x.durable(meta.OriginPush, err))
}
