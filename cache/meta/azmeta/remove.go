package azmeta

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// RemoveManifest implements meta.ManifestStore: the tags pointing at d
// first (each only if it still does), then d, so that no reader follows a
// tag to a manifest that is gone.
func (x *Index) RemoveManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	mname := manifestName(repo, d)
	if _, _, err := x.get(ctx, mname); err != nil {
		return nil, wrap("remove manifest", err)
	}
	type hit struct {
		tag  string
		etag azcore.ETag
	}
	var hits []hit
	err := each(ctx, x, kTag, repoPrefix(kTag, repo), func(parts []string, etag azcore.ETag, t meta.Tag) error {
		if len(parts) == 2 && t.Digest == d {
			hits = append(hits, hit{parts[1], etag})
		}
		return nil
	})
	if err != nil {
		return nil, wrap("remove manifest", err)
	}
	var mu sync.Mutex
	var removed []string
	err = x.parallel(ctx, len(hits), func(ctx context.Context, i int) error {
		ok, err := x.untag(ctx, repo, hits[i].tag, d, hits[i].etag)
		if ok {
			mu.Lock()
			removed = append(removed, hits[i].tag)
			mu.Unlock()
		}
		return err
	})
	if len(hits) > 0 {
		err = x.tagsChanged(ctx, err)
	}
	if err != nil {
		return removed, wrap("remove manifest", err)
	}
	// Gone already: another caller removed it meanwhile; its tags went.
	if err := x.remove(ctx, mname, azure.Cond{}); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return removed, wrap("remove manifest", err)
	}
	return removed, nil
}

// untag deletes repo's tag if it still points at d, whatever else changed
// in its record since it was listed at etag, and reports whether it did.
func (x *Index) untag(ctx context.Context, repo, tag string, d digest.Digest, etag azcore.ETag) (bool, error) {
	name := tagName(repo, tag)
	for range maxRetries {
		err := x.remove(ctx, name, azure.Cond{IfMatch: etag})
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, meta.ErrNotFound):
			return false, nil
		case !errors.Is(err, azure.ErrConditionNotMet):
			return false, err
		}
		var t meta.Tag
		etag, err = x.getJSON(ctx, name, &t)
		if errors.Is(err, meta.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if t.Digest != d {
			return false, nil // moved to another manifest: it stays
		}
	}
	return false, fmt.Errorf("tag %s:%s: too many concurrent changes", repo, tag)
}

// Remove implements meta.Remover: tags, then manifests with their
// referrers and access times, then blob links with their access times,
// then the repository's record if it is cached and left empty.
func (x *Index) Remove(ctx context.Context, r meta.Removal) error {
	var tags, mans, blobs []string
	for _, t := range r.Tags {
		tags = append(tags, tagName(r.Repo, t))
	}
	for _, d := range r.Manifests {
		mans = append(mans, manifestName(r.Repo, d), referrersName(r.Repo, d), accessName(r.Repo, d))
	}
	for _, d := range r.Blobs {
		blobs = append(blobs, blobName(r.Repo, d), accessName(r.Repo, d))
	}
	err := x.removeAll(ctx, tags)
	if len(tags) > 0 {
		err = x.tagsChanged(ctx, err)
	}
	if err != nil {
		return wrap("remove", err)
	}
	for _, names := range [][]string{mans, blobs} {
		if err := x.removeAll(ctx, names); err != nil {
			return wrap("remove", err)
		}
	}
	return wrap("remove", x.dropIfEmpty(ctx, r.Repo))
}

// removeAll deletes the records named, skipping missing ones.
func (x *Index) removeAll(ctx context.Context, names []string) error {
	return x.parallel(ctx, len(names), func(ctx context.Context, i int) error {
		if err := x.remove(ctx, names[i], azure.Cond{}); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		return nil
	})
}

// dropIfEmpty removes a cached repository's record when it holds nothing.
// A link another replica adds meanwhile records the repository first; if
// it found the record before this deletes it, the second look sees the
// link and puts the record back.
func (x *Index) dropIfEmpty(ctx context.Context, repo string) error {
	name := repoName(repo)
	var rec meta.Repo
	etag, err := x.getJSON(ctx, name, &rec)
	if errors.Is(err, meta.ErrNotFound) {
		return nil
	}
	if err != nil || rec.Origin != meta.OriginCache {
		return err
	}
	if holds, err := x.holds(ctx, repo); err != nil || holds {
		return err
	}
	x.ensured.forget(repo)
	err = x.remove(ctx, name, azure.Cond{IfMatch: etag})
	if errors.Is(err, meta.ErrNotFound) || errors.Is(err, azure.ErrConditionNotMet) {
		return nil // gone already, or written since (made pushed, or re-created)
	}
	if err != nil {
		return err
	}
	holds, err := x.holds(ctx, repo)
	if err != nil || !holds {
		return err
	}
	defer x.wrote(name)
	if _, err := x.put(ctx, name, rec, azure.Cond{IfNoneMatch: azcore.ETagAny}); err != nil && !errors.Is(err, azure.ErrExists) {
		return err
	}
	return nil
}

// holds reports whether repo has a tag, manifest or blob link.
func (x *Index) holds(ctx context.Context, repo string) (bool, error) {
	for _, kind := range []string{kTag, kManifest, kBlob} {
		found, err := x.exists(ctx, repoPrefix(kind, repo))
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}
