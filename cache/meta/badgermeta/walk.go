package badgermeta

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
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

// EachTag implements meta.Walker.
func (x *Index) EachTag(ctx context.Context, repo string, fn func(meta.TagLink) error) error {
	return wrap("tags", x.each(ctx, kTag, repo, func(r, name string, v []byte) error {
		var t meta.Tag
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		return fn(meta.TagLink{Repo: r, Name: name, Tag: t})
	}))
}

// EachManifest implements meta.Walker.
func (x *Index) EachManifest(ctx context.Context, repo string, fn func(meta.ManifestLink) error) error {
	return wrap("manifests", x.each(ctx, kManifest, repo, func(r, name string, v []byte) error {
		var m meta.Manifest
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		return fn(meta.ManifestLink{Repo: r, Digest: digest.Digest(name), Manifest: m})
	}))
}

// EachBlob implements meta.Walker.
func (x *Index) EachBlob(ctx context.Context, repo string, fn func(meta.BlobLink) error) error {
	return wrap("blobs", x.each(ctx, kBlob, repo, func(r, name string, v []byte) error {
		var b meta.Blob
		if err := json.Unmarshal(v, &b); err != nil {
			return err
		}
		return fn(meta.BlobLink{Repo: r, Digest: digest.Digest(name), Blob: b})
	}))
}
