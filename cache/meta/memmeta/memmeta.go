// Package memmeta is an implementation of the metadata contract
// (cache/meta) kept in maps in memory: for tests of the engine and of
// anything else that needs an index without a disk. It passes the same
// suite (metatest) as the badger index. Nothing survives the process.
package memmeta

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// key names a record within a kind: a repository and a tag or digest (or a
// pin's reference and owner).
type key struct{ a, b string }

// Index is an in-memory metadata index. The zero value is not usable:
// call New.
type Index struct {
	// gate is held shared by the linking writes and exclusively by
	// Exclusive.
	gate sync.RWMutex

	mu        sync.RWMutex
	tags      map[key]meta.Tag
	manifests map[key]meta.Manifest
	blobs     map[key]meta.Blob
	repos     map[string]meta.Repo
	referrers map[key]meta.Referrers
	pins      map[key]meta.Pin
	access    map[key]time.Time
}

var _ meta.Store = (*Index)(nil)

// New returns an empty index.
func New() *Index {
	return &Index{
		tags: map[key]meta.Tag{}, manifests: map[key]meta.Manifest{}, blobs: map[key]meta.Blob{},
		repos: map[string]meta.Repo{}, referrers: map[key]meta.Referrers{},
		pins: map[key]meta.Pin{}, access: map[key]time.Time{},
	}
}

// Close does nothing: the records live as long as the Index, so a closed
// Index can be used again (a "reopen").
func (x *Index) Close() error { return nil }

func cloneManifest(m meta.Manifest) meta.Manifest {
	m.Refs = slices.Clone(m.Refs)
	m.Annotations = maps.Clone(m.Annotations)
	return m
}

func cloneReferrers(r meta.Referrers) meta.Referrers {
	r.Body = slices.Clone(r.Body)
	return r
}

// linking runs a write that adds links while no Exclusive section runs.
func (x *Index) linking(fn func()) {
	x.gate.RLock()
	defer x.gate.RUnlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	fn()
}

// ensureRepo records repo on its first content; pushed content makes a
// cached repository a pushed one. The caller holds mu.
func (x *Index) ensureRepo(repo string, o meta.Origin, now time.Time) {
	r, ok := x.repos[repo]
	switch {
	case !ok:
		x.repos[repo] = meta.Repo{Origin: o, Created: now}
	case r.Origin == meta.OriginCache && o == meta.OriginPush:
		r.Origin = meta.OriginPush
		x.repos[repo] = r
	}
}

// get reads one record of m.
func get[V any](x *Index, m map[key]V, k key) (V, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	v, ok := m[k]
	if !ok {
		return v, meta.ErrNotFound
	}
	return v, nil
}

// del deletes one record of m, or returns ErrNotFound.
func del[V any](x *Index, m map[key]V, k key) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := m[k]; !ok {
		return meta.ErrNotFound
	}
	delete(m, k)
	return nil
}

// Tag implements meta.TagStore.
func (x *Index) Tag(ctx context.Context, repo, tag string) (meta.Tag, error) {
	return get(x, x.tags, key{repo, tag})
}

// PutTag implements meta.TagStore.
func (x *Index) PutTag(ctx context.Context, repo, tag string, t meta.Tag) error {
	x.linking(func() {
		x.ensureRepo(repo, t.Origin, t.FetchedAt)
		x.tags[key{repo, tag}] = t
	})
	return nil
}

// DeleteTag implements meta.TagStore.
func (x *Index) DeleteTag(ctx context.Context, repo, tag string) error {
	return del(x, x.tags, key{repo, tag})
}

// Manifest implements meta.ManifestStore.
func (x *Index) Manifest(ctx context.Context, repo string, d digest.Digest) (meta.Manifest, error) {
	m, err := get(x, x.manifests, key{repo, d.String()})
	return cloneManifest(m), err
}

// PutManifest implements meta.ManifestStore.
func (x *Index) PutManifest(ctx context.Context, repo string, d digest.Digest, m meta.Manifest, tag string, t meta.Tag) error {
	m = cloneManifest(m)
	x.linking(func() {
		x.ensureRepo(repo, m.Origin, m.Added)
		x.manifests[key{repo, d.String()}] = m
		if tag != "" {
			x.tags[key{repo, tag}] = t
		}
	})
	return nil
}

// DeleteManifest implements meta.ManifestStore.
func (x *Index) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return del(x, x.manifests, key{repo, d.String()})
}

// RemoveManifest implements meta.ManifestStore.
func (x *Index) RemoveManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mk := key{repo, d.String()}
	if _, ok := x.manifests[mk]; !ok {
		return nil, meta.ErrNotFound
	}
	var removed []string
	for k, t := range x.tags {
		if k.a == repo && t.Digest == d {
			removed = append(removed, k.b)
			delete(x.tags, k)
		}
	}
	delete(x.manifests, mk)
	return removed, nil
}

// Blob implements meta.BlobLinker.
func (x *Index) Blob(ctx context.Context, repo string, d digest.Digest) (meta.Blob, error) {
	return get(x, x.blobs, key{repo, d.String()})
}

// LinkBlob implements meta.BlobLinker.
func (x *Index) LinkBlob(ctx context.Context, repo string, d digest.Digest, b meta.Blob) error {
	x.linking(func() {
		x.ensureRepo(repo, b.Origin, b.Added)
		x.blobs[key{repo, d.String()}] = b
	})
	return nil
}

// UnlinkBlob implements meta.BlobLinker.
func (x *Index) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return del(x, x.blobs, key{repo, d.String()})
}

// Referrers implements meta.ReferrersCache.
func (x *Index) Referrers(ctx context.Context, repo string, d digest.Digest) (meta.Referrers, error) {
	r, err := get(x, x.referrers, key{repo, d.String()})
	return cloneReferrers(r), err
}

// PutReferrers implements meta.ReferrersCache.
func (x *Index) PutReferrers(ctx context.Context, repo string, d digest.Digest, r meta.Referrers) error {
	r = cloneReferrers(r)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.referrers[key{repo, d.String()}] = r
	return nil
}

// Repo implements meta.Catalog.
func (x *Index) Repo(ctx context.Context, repo string) (meta.Repo, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r, ok := x.repos[repo]
	if !ok {
		return r, meta.ErrNotFound
	}
	return r, nil
}

// page returns the sorted names after last, at most n (n <= 0: all), and
// whether more follow.
func page(names []string, last string, n int) ([]string, bool) {
	sort.Strings(names)
	i := sort.Search(len(names), func(i int) bool { return names[i] > last })
	names = names[i:]
	if n > 0 && len(names) > n {
		return names[:n:n], true
	}
	return names, false
}

// Repos implements meta.Catalog.
func (x *Index) Repos(ctx context.Context, last string, n int) ([]string, bool, error) {
	x.mu.RLock()
	names := slices.Collect(maps.Keys(x.repos))
	x.mu.RUnlock()
	out, more := page(names, last, n)
	return out, more, nil
}

// Tags implements meta.Catalog.
func (x *Index) Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	x.mu.RLock()
	var names []string
	for k := range x.tags {
		if k.a == repo {
			names = append(names, k.b)
		}
	}
	x.mu.RUnlock()
	out, more := page(names, last, n)
	return out, more, nil
}

// PushedRepos implements meta.PushedLister.
func (x *Index) PushedRepos(ctx context.Context) ([]string, error) {
	x.mu.RLock()
	var out []string
	for name, r := range x.repos {
		if r.Origin == meta.OriginPush {
			out = append(out, name)
		}
	}
	x.mu.RUnlock()
	sort.Strings(out)
	return out, nil
}

// PutPins implements meta.PinStore.
func (x *Index) PutPins(ctx context.Context, ps []meta.Pin) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range ps {
		x.pins[key{p.Ref, p.Owner}] = p
	}
	return nil
}

// DeletePins implements meta.PinStore.
func (x *Index) DeletePins(ctx context.Context, refs []string, owner string) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for k := range x.pins {
		if slices.Contains(refs, k.a) || (owner != "" && k.b == owner) {
			delete(x.pins, k)
			n++
		}
	}
	return n, nil
}

// Pins implements meta.PinStore.
func (x *Index) Pins(ctx context.Context) ([]meta.Pin, error) {
	x.mu.RLock()
	out := slices.Collect(maps.Values(x.pins))
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b meta.Pin) int {
		if c := strings.Compare(a.Ref, b.Ref); c != 0 {
			return c
		}
		return strings.Compare(a.Owner, b.Owner)
	})
	return out, nil
}
