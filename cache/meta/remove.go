package meta

import (
	"encoding/json"
	"errors"

	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
)

// Removal lists links of one repository to remove together: what eviction
// or the startup check decided is gone.
type Removal struct {
	Repo      string
	Tags      []string
	Manifests []digest.Digest
	Blobs     []digest.Digest
}

// removeBatch bounds the keys deleted in one transaction.
const removeBatch = 512

// Remove deletes the links of r (missing ones are skipped), their access
// records and the cached referrers of removed manifests. A cached (not
// pushed) repository left with no tag, manifest or blob is removed from the
// catalog. Links added meanwhile are kept.
func (x *Index) Remove(r Removal) error {
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
	var rec Repo
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
		return err
	}
	if rec.Origin != OriginCache {
		return nil
	}
	return txn.Delete(key(kRepo, repo))
}
