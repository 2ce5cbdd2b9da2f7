package badgermeta

import (
	"context"
	"encoding/json"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
)

// list returns up to n names after last under prefix (n <= 0: all), and
// whether more follow.
func (x *Index) list(prefix []byte, last string, n int, keep func(val []byte) bool) ([]string, bool, error) {
	var out []string
	more := false
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: keep != nil, PrefetchSize: 16})
		defer it.Close()
		start := prefix
		if last != "" {
			start = append(append([]byte(nil), prefix...), last...)
		}
		for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
			name := string(it.Item().Key()[len(prefix):])
			if name == last {
				continue
			}
			if keep != nil {
				var ok bool
				if err := it.Item().Value(func(v []byte) error { ok = keep(v); return nil }); err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			if n > 0 && len(out) == n {
				more = true
				return nil
			}
			out = append(out, name)
		}
		return nil
	})
	return out, more, wrap("list", err)
}

// Tags implements meta.Catalog.
func (x *Index) Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	return x.list(key(kTag, repo, ""), last, n, nil)
}

// Repos implements meta.Catalog.
func (x *Index) Repos(ctx context.Context, last string, n int) ([]string, bool, error) {
	return x.list(key(kRepo, ""), last, n, nil)
}

// PushedRepos implements meta.PushedLister.
func (x *Index) PushedRepos(ctx context.Context) ([]string, error) {
	out, _, err := x.list(key(kRepo, ""), "", 0, func(v []byte) bool {
		var r meta.Repo
		return json.Unmarshal(v, &r) == nil && r.Origin == meta.OriginPush
	})
	return out, err
}
