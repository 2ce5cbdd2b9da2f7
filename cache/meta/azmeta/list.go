package azmeta

import (
	"context"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
)

// names returns up to n names (the last part of the blob names under pfx)
// after last, and whether more follow. The service lists in lexical order,
// which the name encoding makes the names' byte order; it cannot start
// after a name, so the names up to last are listed and skipped.
func (x *Index) names(ctx context.Context, pfx, last string, n int) ([]string, bool, error) {
	var out []string
	more := false
	err := x.list(ctx, pfx, false, 0, func(it item) (bool, error) {
		rest, _ := strings.CutPrefix(it.name, pfx)
		parts, err := decode(rest)
		if err != nil || len(parts) != 1 || parts[0] <= last {
			return true, nil
		}
		if n > 0 && len(out) == n {
			more = true
			return false, nil
		}
		out = append(out, parts[0])
		return true, nil
	})
	return out, more, err
}

// Tags implements meta.Catalog.
func (x *Index) Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	tags, more, err := x.names(ctx, repoPrefix(kTag, repo), last, n)
	return tags, more, wrap("tags", err)
}

// Repos implements meta.Catalog.
func (x *Index) Repos(ctx context.Context, last string, n int) ([]string, bool, error) {
	repos, more, err := x.names(ctx, kindPrefix(kRepo), last, n)
	return repos, more, wrap("repos", err)
}

// PushedRepos implements meta.PushedLister.
func (x *Index) PushedRepos(ctx context.Context) ([]string, error) {
	var out []string
	err := each(ctx, x, kRepo, kindPrefix(kRepo), func(parts []string, _ azcore.ETag, r meta.Repo) error {
		if len(parts) == 1 && r.Origin == meta.OriginPush {
			out = append(out, parts[0])
		}
		return nil
	})
	return out, wrap("pushed repos", err)
}

// walk decodes the records of kind keyed by repository and name (in repo,
// or everywhere when repo is "") and calls fn with the link made of each.
func walk[T, L any](ctx context.Context, x *Index, op, kind, repo string, link func(repo, name string, rec T) L, fn func(L) error) error {
	return wrap(op, each(ctx, x, kind, repoPrefix(kind, repo), func(parts []string, _ azcore.ETag, rec T) error {
		if len(parts) != 2 {
			return nil
		}
		return fn(link(parts[0], parts[1], rec))
	}))
}

// EachTag implements meta.Walker.
func (x *Index) EachTag(ctx context.Context, repo string, fn func(meta.TagLink) error) error {
	return walk(ctx, x, "tags", kTag, repo, meta.NewTagLink, fn)
}

// EachManifest implements meta.Walker.
func (x *Index) EachManifest(ctx context.Context, repo string, fn func(meta.ManifestLink) error) error {
	return walk(ctx, x, "manifests", kManifest, repo, meta.NewManifestLink, fn)
}

// EachBlob implements meta.Walker.
func (x *Index) EachBlob(ctx context.Context, repo string, fn func(meta.BlobLink) error) error {
	return walk(ctx, x, "blobs", kBlob, repo, meta.NewBlobLink, fn)
}
