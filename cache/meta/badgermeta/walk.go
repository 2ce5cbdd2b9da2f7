package badgermeta

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
)

// each calls fn with the two key parts after kind and the value of every
// record of that kind (in repo, or everywhere when repo is ""). It stops
// when ctx ends.
func (x *Index) each(ctx context.Context, kind, repo string, fn func(repo, name string, val []byte) error) error {
	prefix := key(kind, repo, "")
	if repo == "" {
		prefix = key(kind, "")
	}
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
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

// eachRecord decodes every record of kind in repo into a T and calls fn
// with the link made of it; op names the walk in errors.
func eachRecord[T, L any](ctx context.Context, x *Index, op, kind, repo string, link func(repo, name string, rec T) L, fn func(L) error) error {
	return wrap(op, x.each(ctx, kind, repo, func(r, name string, v []byte) error {
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		return fn(link(r, name, rec))
	}))
}

// EachTag implements meta.Walker.
func (x *Index) EachTag(ctx context.Context, repo string, fn func(meta.TagLink) error) error {
	return eachRecord(ctx, x, "tags", kTag, repo, meta.NewTagLink, fn)
}

// EachManifest implements meta.Walker.
func (x *Index) EachManifest(ctx context.Context, repo string, fn func(meta.ManifestLink) error) error {
	return eachRecord(ctx, x, "manifests", kManifest, repo, meta.NewManifestLink, fn)
}

// EachBlob implements meta.Walker.
func (x *Index) EachBlob(ctx context.Context, repo string, fn func(meta.BlobLink) error) error {
	return eachRecord(ctx, x, "blobs", kBlob, repo, meta.NewBlobLink, fn)
}
