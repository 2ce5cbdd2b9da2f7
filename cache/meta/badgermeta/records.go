package badgermeta

import (
	"context"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"
)

// Tag implements meta.TagStore.
func (x *Index) Tag(ctx context.Context, repo, tag string) (meta.Tag, error) {
	var t meta.Tag
	return t, wrap("tag", x.get(key(kTag, repo, tag), &t))
}

// PutTag implements meta.TagStore.
func (x *Index) PutTag(ctx context.Context, repo, tag string, t meta.Tag) error {
	return wrap("put tag", x.durable(t.Origin, x.link(func(txn *badger.Txn) error {
		if err := ensureRepo(txn, repo, t.Origin, t.FetchedAt); err != nil {
			return err
		}
		return set(txn, key(kTag, repo, tag), t)
	})))
}

// DeleteTag implements meta.TagStore.
func (x *Index) DeleteTag(ctx context.Context, repo, tag string) error {
	return wrap("delete tag", x.durable(meta.OriginPush, x.deleteKey(key(kTag, repo, tag))))
}

// Manifest implements meta.ManifestStore.
func (x *Index) Manifest(ctx context.Context, repo string, d digest.Digest) (meta.Manifest, error) {
	var m meta.Manifest
	return m, wrap("manifest", x.get(key(kManifest, repo, d.String()), &m))
}

// PutManifest implements meta.ManifestStore.
func (x *Index) PutManifest(ctx context.Context, repo string, d digest.Digest, m meta.Manifest, tag string, t meta.Tag) error {
	return wrap("put manifest", x.durable(m.Origin, x.link(func(txn *badger.Txn) error {
		if err := ensureRepo(txn, repo, m.Origin, m.Added); err != nil {
			return err
		}
		if err := set(txn, key(kManifest, repo, d.String()), m); err != nil {
			return err
		}
		if tag != "" {
			return set(txn, key(kTag, repo, tag), t)
		}
		return nil
	})))
}

// DeleteManifest implements meta.ManifestStore.
func (x *Index) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return wrap("delete manifest", x.durable(meta.OriginPush, x.deleteKey(key(kManifest, repo, d.String()))))
}

// Blob implements meta.BlobLinker.
func (x *Index) Blob(ctx context.Context, repo string, d digest.Digest) (meta.Blob, error) {
	var b meta.Blob
	return b, wrap("blob", x.get(key(kBlob, repo, d.String()), &b))
}

// LinkBlob implements meta.BlobLinker.
func (x *Index) LinkBlob(ctx context.Context, repo string, d digest.Digest, b meta.Blob) error {
	return wrap("link blob", x.durable(b.Origin, x.link(func(txn *badger.Txn) error {
		if err := ensureRepo(txn, repo, b.Origin, b.Added); err != nil {
			return err
		}
		return set(txn, key(kBlob, repo, d.String()), b)
	})))
}

// UnlinkBlob implements meta.BlobLinker.
func (x *Index) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return wrap("unlink blob", x.durable(meta.OriginPush, x.deleteKey(key(kBlob, repo, d.String()))))
}

// Repo implements meta.Catalog.
func (x *Index) Repo(ctx context.Context, repo string) (meta.Repo, error) {
	var r meta.Repo
	return r, wrap("repo", x.get(key(kRepo, repo), &r))
}

// Referrers implements meta.ReferrersCache.
func (x *Index) Referrers(ctx context.Context, repo string, d digest.Digest) (meta.Referrers, error) {
	var r meta.Referrers
	return r, wrap("referrers", x.get(key(kReferrers, repo, d.String()), &r))
}

// PutReferrers implements meta.ReferrersCache.
func (x *Index) PutReferrers(ctx context.Context, repo string, d digest.Digest, r meta.Referrers) error {
	return wrap("put referrers", x.update(func(txn *badger.Txn) error {
		return set(txn, key(kReferrers, repo, d.String()), r)
	}))
}
