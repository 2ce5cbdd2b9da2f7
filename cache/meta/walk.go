package meta

import (
	"encoding/json"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
)

// TagLink is a tag of a repository.
type TagLink struct {
	Repo string
	Name string
	Tag
}

// BlobLink is a blob linked to a repository.
type BlobLink struct {
	Repo   string
	Digest digest.Digest
	Blob
}

// each calls fn with the two key parts after kind and the value of every
// record of that kind (in repo, or everywhere when repo is "").
func (x *Index) each(kind, repo string, fn func(repo, name string, val []byte) error) error {
	prefix := key(kind, repo, "")
	if repo == "" {
		prefix = key(kind, "")
	}
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			parts := strings.SplitN(string(it.Item().Key()), sep, 3)
			if len(parts) != 3 {
				continue
			}
			if err := it.Item().Value(func(v []byte) error { return fn(parts[1], parts[2], v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// EachTag calls fn for each tag of repo ("" = every repo).
func (x *Index) EachTag(repo string, fn func(TagLink) error) error {
	return wrap("tags", x.each(kTag, repo, func(r, name string, v []byte) error {
		var t Tag
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		return fn(TagLink{Repo: r, Name: name, Tag: t})
	}))
}

// EachBlob calls fn for each blob linked to repo ("" = every repo).
func (x *Index) EachBlob(repo string, fn func(BlobLink) error) error {
	return wrap("blobs", x.each(kBlob, repo, func(r, name string, v []byte) error {
		var b Blob
		if err := json.Unmarshal(v, &b); err != nil {
			return err
		}
		return fn(BlobLink{Repo: r, Digest: digest.Digest(name), Blob: b})
	}))
}
