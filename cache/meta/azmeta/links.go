package azmeta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// maxRetries bounds read-modify-write loops that lose to concurrent
// writers.
const maxRetries = 16

// write puts v as the record name, replacing any, and tells the read
// cache; it returns the write's stamp (see cacheWritten).
func (x *Index) write(ctx context.Context, name string, v any) (uint64, error) {
	_, err := x.put(ctx, name, v, azure.Cond{})
	return x.wrote(name), err
}

// writeOnly is write for the records a read cache keeps no written value of.
func (x *Index) writeOnly(ctx context.Context, name string, v any) error {
	_, err := x.write(ctx, name, v)
	return err
}

// remove deletes the record name under cond and tells the read cache;
// errors wrap meta.ErrNotFound if it does not exist.
func (x *Index) remove(ctx context.Context, name string, cond azure.Cond) error {
	defer x.wrote(name)
	return x.del(ctx, name, cond)
}

// ensureRepo records repo on its first content (create-only, one request
// when it exists); pushed content makes a cached repository a pushed one
// (If-Match, retried). A repository this replica recorded as o (or as
// pushed) less than the mutable TTL ago, under the same gate ETag, is not
// asked again: a repository record is only dropped by Remove, which the
// collector and the startup check call inside an Exclusive section, and
// every section changes the gate's ETag.
func (x *Index) ensureRepo(ctx context.Context, repo string, o meta.Origin, now time.Time, gate azcore.ETag) error {
	if x.ensured.has(repo, o, gate, x.now()) {
		return nil
	}
	name := repoName(repo)
	defer x.wrote(name)
	for range maxRetries {
		_, err := x.put(ctx, name, meta.Repo{Origin: o, Created: now}, azure.Cond{IfNoneMatch: azcore.ETagAny})
		if err == nil || errors.Is(err, azure.ErrExists) && o != meta.OriginPush {
			x.ensured.add(repo, o, gate, x.now().Add(x.mutableTTL))
			return nil
		}
		if !errors.Is(err, azure.ErrExists) {
			return err
		}
		var r meta.Repo
		etag, err := x.getJSON(ctx, name, &r)
		if errors.Is(err, meta.ErrNotFound) {
			continue // dropped meanwhile: create it again
		}
		if err != nil {
			return err
		}
		if r.Origin != meta.OriginPush {
			_, err = x.put(ctx, name, meta.Repo{Origin: meta.OriginPush, Created: r.Created}, azure.Cond{IfMatch: etag})
		}
		if err == nil {
			x.ensured.add(repo, meta.OriginPush, gate, x.now().Add(x.mutableTTL))
			return nil
		}
		if !errors.Is(err, azure.ErrConditionNotMet) && !errors.Is(err, azure.ErrNotFound) {
			return err
		}
	}
	return fmt.Errorf("record repository %s: too many concurrent changes", repo)
}

// maxEnsured bounds the repositories ensureRepo remembers.
const maxEnsured = 10_000

// ensuredRepos remembers which repositories this replica recorded lately.
type ensuredRepos struct {
	mu sync.Mutex
	m  map[string]ensured
}

type ensured struct {
	origin  meta.Origin
	gate    azcore.ETag
	expires time.Time
}

// has reports whether repo was recorded as o (or as pushed, which covers
// both) under gate, and not longer ago than its TTL.
func (e *ensuredRepos) has(repo string, o meta.Origin, gate azcore.ETag, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.m[repo]
	return ok && r.gate == gate && now.Before(r.expires) && (r.origin == o || r.origin == meta.OriginPush)
}

func (e *ensuredRepos) add(repo string, o meta.Origin, gate azcore.ETag, expires time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil || len(e.m) >= maxEnsured {
		e.m = map[string]ensured{}
	}
	e.m[repo] = ensured{origin: o, gate: gate, expires: expires}
}

// forget drops what is remembered of repo (its record was deleted here).
func (e *ensuredRepos) forget(repo string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, repo)
}

// Tag implements meta.TagStore.
func (x *Index) Tag(ctx context.Context, repo, tag string) (meta.Tag, error) {
	t, err := read[meta.Tag](ctx, x, kTag, tagName(repo, tag))
	return t, wrap("tag", err)
}

// PutTag implements meta.TagStore.
func (x *Index) PutTag(ctx context.Context, repo, tag string, t meta.Tag) error {
	err := x.link(ctx, repo, t.Origin, t.FetchedAt, func(ctx context.Context) error {
		return x.tagsChanged(ctx, x.writeOnly(ctx, tagName(repo, tag), t))
	})
	if err == nil {
		x.readAhead(kTag, tagName(repo, tag))
	}
	return wrap("put tag", err)
}

// DeleteTag implements meta.TagStore.
func (x *Index) DeleteTag(ctx context.Context, repo, tag string) error {
	return wrap("delete tag", x.tagsChanged(ctx, x.remove(ctx, tagName(repo, tag), azure.Cond{})))
}

// Manifest implements meta.ManifestStore.
func (x *Index) Manifest(ctx context.Context, repo string, d digest.Digest) (meta.Manifest, error) {
	m, err := read[meta.Manifest](ctx, x, kManifest, manifestName(repo, d))
	return m, wrap("manifest", err)
}

// PutManifest implements meta.ManifestStore: the repository, then the
// manifest, then the tag (see the package documentation for what a reader
// can see in between). Once linked, the manifest record is in this
// replica's read cache, and the tag is read ahead.
func (x *Index) PutManifest(ctx context.Context, repo string, d digest.Digest, m meta.Manifest, tag string, t meta.Tag) error {
	name := manifestName(repo, d)
	var stamp uint64
	err := x.link(ctx, repo, m.Origin, m.Added, func(ctx context.Context) error {
		s, err := x.write(ctx, name, m)
		if stamp = s; err != nil || tag == "" {
			return err
		}
		return x.tagsChanged(ctx, x.writeOnly(ctx, tagName(repo, tag), t))
	})
	if err == nil {
		cacheWritten(x, kManifest, name, stamp, m)
		if tag != "" {
			x.readAhead(kTag, tagName(repo, tag))
		}
	}
	return wrap("put manifest", err)
}

// DeleteManifest implements meta.ManifestStore.
func (x *Index) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return wrap("delete manifest", x.remove(ctx, manifestName(repo, d), azure.Cond{}))
}

// PeerLinked tells this replica's read cache that another replica linked
// the manifest reference ref (a tag or a digest) of repo just now (it
// answered this replica's relay of it): what was cached before, a NotFound
// above all, is not served again, and the record is read ahead.
func (x *Index) PeerLinked(repo, ref string) {
	kind, name := kTag, tagName(repo, ref)
	if d, err := digest.Parse(ref); err == nil {
		kind, name = kManifest, manifestName(repo, d)
	} else {
		x.tgen.forget() // the peer bumped the generation after its tag write
	}
	x.wrote(name)
	x.readAhead(kind, name)
}

// Blob implements meta.BlobLinker.
func (x *Index) Blob(ctx context.Context, repo string, d digest.Digest) (meta.Blob, error) {
	b, err := read[meta.Blob](ctx, x, kBlob, blobName(repo, d))
	return b, wrap("blob", err)
}

// LinkBlob implements meta.BlobLinker. Once linked, the link is in this
// replica's read cache.
func (x *Index) LinkBlob(ctx context.Context, repo string, d digest.Digest, b meta.Blob) error {
	name := blobName(repo, d)
	var stamp uint64
	err := x.link(ctx, repo, b.Origin, b.Added, func(ctx context.Context) error {
		var err error
		stamp, err = x.write(ctx, name, b)
		return err
	})
	if err == nil {
		cacheWritten(x, kBlob, name, stamp, b)
	}
	return wrap("link blob", err)
}

// UnlinkBlob implements meta.BlobLinker.
func (x *Index) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return wrap("unlink blob", x.remove(ctx, blobName(repo, d), azure.Cond{}))
}

// Repo implements meta.Catalog.
func (x *Index) Repo(ctx context.Context, repo string) (meta.Repo, error) {
	r, err := read[meta.Repo](ctx, x, kRepo, repoName(repo))
	return r, wrap("repo", err)
}

// Referrers implements meta.ReferrersCache.
func (x *Index) Referrers(ctx context.Context, repo string, d digest.Digest) (meta.Referrers, error) {
	r, err := read[meta.Referrers](ctx, x, kReferrers, referrersName(repo, d))
	return r, wrap("referrers", err)
}

// PutReferrers implements meta.ReferrersCache.
func (x *Index) PutReferrers(ctx context.Context, repo string, d digest.Digest, r meta.Referrers) error {
	return wrap("put referrers", x.writeOnly(ctx, referrersName(repo, d), r))
}
