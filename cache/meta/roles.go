package meta

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// Every method is safe for concurrent use. A write copies the records it
// is given. A read may return slices and maps (Refs, Annotations, Body)
// shared with the index's caches: callers must not modify them.
//
// Durability: a write of pushed content (Origin OriginPush), a delete a
// client asked for (DeleteTag, DeleteManifest, RemoveManifest, UnlinkBlob)
// and PutPins have reached stable storage when they return. Writes of
// cached content, referrers, access times and removals may be lost in a
// crash: cached content can be fetched again, and the startup check and
// the garbage collector reconcile the index with the content store.
//
// Linking writes (PutTag, PutManifest, LinkBlob) wait while an Exclusive
// section runs (see Remover).

// TagStore keeps each repository's tags.
type TagStore interface {
	// Tag returns the tag's record, or an error wrapping ErrNotFound.
	Tag(ctx context.Context, repo, tag string) (Tag, error)
	// PutTag points tag at t, replacing any previous record, and records
	// repo (see Repo) if it is new.
	PutTag(ctx context.Context, repo, tag string, t Tag) error
	// DeleteTag removes the tag, or returns an error wrapping ErrNotFound
	// if there was none.
	DeleteTag(ctx context.Context, repo, tag string) error
}

// ManifestStore links manifests (whose bytes are in the content store) to
// repositories.
type ManifestStore interface {
	// Manifest returns the manifest d linked to repo, or an error wrapping
	// ErrNotFound.
	Manifest(ctx context.Context, repo string, d digest.Digest) (Manifest, error)
	// PutManifest links d to repo and, when tag is not empty, points tag
	// at t. A reader that sees the tag's new record also sees d linked
	// (an embedded index writes both at once; a shared one writes the
	// manifest first). It records repo if it is new.
	PutManifest(ctx context.Context, repo string, d digest.Digest, m Manifest, tag string, t Tag) error
	// DeleteManifest unlinks d from repo and nothing else (its tags stay),
	// or returns an error wrapping ErrNotFound if it was not linked.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// RemoveManifest unlinks d from repo together with every tag of repo
	// pointing at it, and returns those tags (in no particular order). No
	// reader sees a removed tag once d is unlinked (a shared index may
	// remove some tags before d). It returns an error wrapping
	// ErrNotFound, and removes nothing, if d was not linked to repo.
	RemoveManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error)
}

// BlobLinker links committed blobs to repositories. Links are per
// repository: a blob linked to one is not linked to another.
type BlobLinker interface {
	// Blob returns the link of d to repo, or an error wrapping
	// ErrNotFound.
	Blob(ctx context.Context, repo string, d digest.Digest) (Blob, error)
	// LinkBlob links d to repo, replacing any previous link, and records
	// repo if it is new.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, b Blob) error
	// UnlinkBlob removes the link, or returns an error wrapping
	// ErrNotFound if there was none.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
}

// ReferrersCache keeps upstream referrers responses.
type ReferrersCache interface {
	// Referrers returns the cached referrers of d in repo, or an error
	// wrapping ErrNotFound.
	Referrers(ctx context.Context, repo string, d digest.Digest) (Referrers, error)
	// PutReferrers caches r as the referrers of d in repo, replacing any
	// previous copy.
	PutReferrers(ctx context.Context, repo string, d digest.Digest, r Referrers) error
}

// Catalog answers the listing APIs. Names are listed in lexical (byte)
// order; a page holds the names after last ("" from the start), at most n
// of them (n <= 0: all), and more reports whether names follow the page.
type Catalog interface {
	// Repo returns the repository's record, or an error wrapping
	// ErrNotFound. A repository is recorded by its first tag, manifest or
	// blob link, as OriginPush if that content was pushed; pushed content
	// added later makes a cached repository OriginPush, never the reverse.
	Repo(ctx context.Context, repo string) (Repo, error)
	// Repos lists recorded repositories.
	Repos(ctx context.Context, last string, n int) (names []string, more bool, err error)
	// Tags lists repo's tags; none (and no error) for an unknown repo.
	Tags(ctx context.Context, repo, last string, n int) (tags []string, more bool, err error)
}

// PushedLister lists repositories that hold pushed content: a cache rule
// may not capture one.
type PushedLister interface {
	// PushedRepos lists the repositories recorded as OriginPush, in
	// lexical order.
	PushedRepos(ctx context.Context) ([]string, error)
}

// PinStore keeps pins set at run time (pins from the configuration file
// are not stored). A pin is keyed by reference and owner: two owners may
// pin the same reference.
type PinStore interface {
	// PutPins records pins, replacing a stored pin of the same reference
	// and owner.
	PutPins(ctx context.Context, ps []Pin) error
	// DeletePins removes the pins of refs (whoever set them) and, when
	// owner is not empty, every pin of owner; it returns how many it
	// removed. Removing nothing is not an error.
	DeletePins(ctx context.Context, refs []string, owner string) (int, error)
	// Pins lists the stored pins, sorted by reference, then owner.
	Pins(ctx context.Context) ([]Pin, error)
}

// AccessRecorder records when manifests and blobs were last served.
type AccessRecorder interface {
	// PutAccess records access times, each replacing the previous record
	// of its repository and digest.
	PutAccess(ctx context.Context, as []Access) error
}

// AccessLog is the access times eviction orders images by.
type AccessLog interface {
	AccessRecorder
	// EachAccess calls fn for every recorded access time, in no
	// particular order, and stops at the first error fn returns.
	EachAccess(ctx context.Context, fn func(Access) error) error
	// DeleteAccess removes access records (of links that no longer
	// exist); missing ones are skipped.
	DeleteAccess(ctx context.Context, as []Access) error
}

// Walker visits every record of a kind, for garbage collection, checks
// and the referrers of pushed manifests. repo "" visits every repository;
// otherwise only repo (not repositories whose name extends it). A walk
// stops at the first error fn returns, and returns it. fn must not write
// to the index.
type Walker interface {
	EachTag(ctx context.Context, repo string, fn func(TagLink) error) error
	EachManifest(ctx context.Context, repo string, fn func(ManifestLink) error) error
	EachBlob(ctx context.Context, repo string, fn func(BlobLink) error) error
}

// Remover is what the garbage collector and the startup check need to
// drop what they decided is gone, with nothing linked meanwhile.
type Remover interface {
	// Exclusive runs fn while no link is added: PutTag, PutManifest and
	// LinkBlob called while fn runs do not commit until it returns. fn
	// may read, walk, and call Remove, DeleteTag, DeleteManifest,
	// RemoveManifest, UnlinkBlob and DeleteAccess, but must not call the
	// linking methods (it would wait for itself). Exclusive returns fn's
	// error. In an index shared by several processes, a linking write of
	// another process that overlaps fn either commits after fn, or is
	// visible to fn's walks, or fails.
	Exclusive(ctx context.Context, fn func(ctx context.Context) error) error
	// Remove deletes the links of r (missing ones are skipped), the access
	// records of its manifests and blobs and the cached referrers of its
	// manifests. A repository recorded as OriginCache that is left with no
	// tag, manifest or blob is dropped from the catalog; a pushed one
	// stays. Links not named in r are kept.
	Remove(ctx context.Context, r Removal) error
}

// Store is every role: what an implementation of the metadata index
// provides. Consumers take the narrowest role they need instead.
type Store interface {
	TagStore
	ManifestStore
	BlobLinker
	ReferrersCache
	Catalog
	PushedLister
	PinStore
	AccessLog
	Walker
	Remover
}
