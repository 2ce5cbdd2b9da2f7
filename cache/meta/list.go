package meta

import (
	"encoding/json"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
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

// Tags lists repo's tags in lexical order after last, at most n (n <= 0: all).
func (x *Index) Tags(repo, last string, n int) ([]string, bool, error) {
	return x.list(key(kTag, repo, ""), last, n, nil)
}

// Repos lists repositories in lexical order after last, at most n.
func (x *Index) Repos(last string, n int) ([]string, bool, error) {
	return x.list(key(kRepo, ""), last, n, nil)
}

// PushedRepos lists repositories that hold pushed content.
func (x *Index) PushedRepos() ([]string, error) {
	out, _, err := x.list(key(kRepo, ""), "", 0, func(v []byte) bool {
		var r Repo
		return json.Unmarshal(v, &r) == nil && r.Origin == OriginPush
	})
	return out, err
}

// ManifestLink is a manifest linked to a repository.
type ManifestLink struct {
	Repo   string
	Digest digest.Digest
	Manifest
}

// Manifests calls fn for each manifest linked to repo ("" = every repo).
func (x *Index) Manifests(repo string, fn func(ManifestLink) error) error {
	prefix := key(kManifest, repo, "")
	if repo == "" {
		prefix = key(kManifest, "")
	}
	return wrap("manifests", x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			parts := strings.SplitN(string(it.Item().Key()), sep, 3)
			if len(parts) != 3 {
				continue
			}
			var m Manifest
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return err
			}
			if err := fn(ManifestLink{Repo: parts[1], Digest: digest.Digest(parts[2]), Manifest: m}); err != nil {
				return err
			}
		}
		return nil
	}))
}
