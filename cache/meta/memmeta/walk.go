package memmeta

import (
	"context"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// PutAccess implements meta.AccessRecorder.
func (x *Index) PutAccess(ctx context.Context, as []meta.Access) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, a := range as {
		x.access[key{a.Repo, a.Digest.String()}] = a.At
	}
	return nil
}

// EachAccess implements meta.AccessLog.
func (x *Index) EachAccess(ctx context.Context, fn func(meta.Access) error) error {
	x.mu.RLock()
	all := make([]meta.Access, 0, len(x.access))
	for k, at := range x.access {
		all = append(all, meta.Access{Repo: k.a, Digest: digest.Digest(k.b), At: at})
	}
	x.mu.RUnlock()
	return each(ctx, all, fn)
}

// DeleteAccess implements meta.AccessLog.
func (x *Index) DeleteAccess(ctx context.Context, as []meta.Access) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, a := range as {
		delete(x.access, key{a.Repo, a.Digest.String()})
	}
	return nil
}

// each calls fn for the records of a snapshot (so that fn runs without
// the lock), until fn fails or ctx ends.
func each[T any](ctx context.Context, all []T, fn func(T) error) error {
	for _, v := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// snapshot copies the records of m in repo ("" = every repository).
func snapshot[V, L any](x *Index, m map[key]V, repo string, link func(key, V) L) []L {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []L
	for k, v := range m {
		if repo == "" || k.a == repo {
			out = append(out, link(k, v))
		}
	}
	return out
}

// EachTag implements meta.Walker.
func (x *Index) EachTag(ctx context.Context, repo string, fn func(meta.TagLink) error) error {
	return each(ctx, snapshot(x, x.tags, repo, func(k key, t meta.Tag) meta.TagLink {
		return meta.TagLink{Repo: k.a, Name: k.b, Tag: t}
	}), fn)
}

// EachManifest implements meta.Walker.
func (x *Index) EachManifest(ctx context.Context, repo string, fn func(meta.ManifestLink) error) error {
	return each(ctx, snapshot(x, x.manifests, repo, func(k key, m meta.Manifest) meta.ManifestLink {
		return meta.ManifestLink{Repo: k.a, Digest: digest.Digest(k.b), Manifest: cloneManifest(m)}
	}), fn)
}

// EachBlob implements meta.Walker.
func (x *Index) EachBlob(ctx context.Context, repo string, fn func(meta.BlobLink) error) error {
	return each(ctx, snapshot(x, x.blobs, repo, func(k key, b meta.Blob) meta.BlobLink {
		return meta.BlobLink{Repo: k.a, Digest: digest.Digest(k.b), Blob: b}
	}), fn)
}

// Exclusive implements meta.Remover.
func (x *Index) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	x.gate.Lock()
	defer x.gate.Unlock()
	return fn(ctx)
}

// Remove implements meta.Remover.
func (x *Index) Remove(ctx context.Context, r meta.Removal) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range r.Tags {
		delete(x.tags, key{r.Repo, t})
	}
	for _, d := range r.Manifests {
		k := key{r.Repo, d.String()}
		delete(x.manifests, k)
		delete(x.referrers, k)
		delete(x.access, k)
	}
	for _, d := range r.Blobs {
		k := key{r.Repo, d.String()}
		delete(x.blobs, k)
		delete(x.access, k)
	}
	if rec, ok := x.repos[r.Repo]; ok && rec.Origin == meta.OriginCache && !x.holds(r.Repo) {
		delete(x.repos, r.Repo)
	}
	return nil
}

// holds reports whether repo has a tag, manifest or blob link. The caller
// holds mu.
func (x *Index) holds(repo string) bool {
	return anyIn(x.tags, repo) || anyIn(x.manifests, repo) || anyIn(x.blobs, repo)
}

func anyIn[V any](m map[key]V, repo string) bool {
	for k := range m {
		if k.a == repo {
			return true
		}
	}
	return false
}
