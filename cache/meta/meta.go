// Package meta is the contract of airlock's metadata index: which tags and
// manifests each repository has, which blobs are linked to it, cached
// upstream referrers, pushed repositories, pins and access times. Blob
// bytes live in the content store (cache/content), never here.
//
// The contract is a set of small role interfaces (roles.go); each consumer
// takes the narrowest it needs. The badger index (badgermeta) is the
// embedded implementation, memmeta keeps everything in memory (tests), and
// metatest is the suite every implementation runs.
package meta

import (
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrNotFound means the record does not exist. Implementations return it
// or an error wrapping it; check with errors.Is.
var ErrNotFound = errors.New("meta: not found")

// ErrRaced means a linking write (PutTag, PutManifest, LinkBlob) may have
// landed after an Exclusive section that began meanwhile on another
// replica had read the index (a shared index: azmeta): that section may
// have removed what the write links. The write is to be taken as failed;
// writing it again (it then waits for the section to end) is safe for
// what the caller knows still exists, such as content it stored just now.
var ErrRaced = errors.New("meta: the link raced an exclusive section")

// Origin says how content reached a repository.
type Origin string

// Origins.
const (
	OriginCache Origin = "cache" // filled from an upstream through a rule
	OriginPush  Origin = "push"  // pushed by a client
)

// The JSON field names below are the stored form of the records in the
// badger index (its on-disk format): never rename them.

// Tag is a tag's current target.
type Tag struct {
	Digest    digest.Digest `json:"d"`
	MediaType string        `json:"mt"`
	Size      int64         `json:"s"`
	// FetchedAt is when the tag was last confirmed with the upstream.
	FetchedAt time.Time `json:"at"`
	Origin    Origin    `json:"o"`
}

// Manifest is a manifest linked to a repository.
type Manifest struct {
	MediaType    string        `json:"mt"`
	Size         int64         `json:"s"`
	ArtifactType string        `json:"at,omitempty"`
	Subject      digest.Digest `json:"sub,omitempty"`
	// Annotations are kept for manifests with a subject (referrers answers).
	Annotations map[string]string `json:"an,omitempty"`
	Refs        []digest.Digest   `json:"refs,omitempty"` // children and blobs it needs
	Origin      Origin            `json:"o"`
	Added       time.Time         `json:"t"`
}

// Blob is a blob linked to a repository.
type Blob struct {
	Size   int64     `json:"s"`
	Origin Origin    `json:"o"`
	Added  time.Time `json:"t"`
}

// Repo is a repository's record. A repository is recorded with its first
// tag, manifest or blob link; pushed content makes it OriginPush for good.
type Repo struct {
	Origin  Origin    `json:"o"`
	Created time.Time `json:"t"`
}

// Referrers is a cached upstream referrers response.
type Referrers struct {
	Body      []byte    `json:"b"`
	MediaType string    `json:"mt"`
	FetchedAt time.Time `json:"at"`
}

// Pin is an image reference ("repo:tag" or "repo@digest") that eviction
// must keep.
type Pin struct {
	Ref string `json:"-"`
	// Owner groups pins set together (e.g. a cluster's bootstrap set) so
	// they can be replaced or dropped together.
	Owner string    `json:"o,omitempty"`
	Added time.Time `json:"t"`
}

// Access is when a manifest or blob of a repository was last served.
type Access struct {
	Repo   string
	Digest digest.Digest
	At     time.Time
}

// TagLink is a tag of a repository.
type TagLink struct {
	Repo string
	Name string
	Tag
}

// ManifestLink is a manifest linked to a repository.
type ManifestLink struct {
	Repo   string
	Digest digest.Digest
	Manifest
}

// BlobLink is a blob linked to a repository.
type BlobLink struct {
	Repo   string
	Digest digest.Digest
	Blob
}

// NewTagLink is the link of tag name of repo, for an index that keys its
// records by repository and name.
func NewTagLink(repo, name string, t Tag) TagLink { return TagLink{Repo: repo, Name: name, Tag: t} }

// NewManifestLink is NewTagLink for a manifest, named by its digest.
func NewManifestLink(repo, name string, m Manifest) ManifestLink {
	return ManifestLink{Repo: repo, Digest: digest.Digest(name), Manifest: m}
}

// NewBlobLink is NewTagLink for a blob, named by its digest.
func NewBlobLink(repo, name string, b Blob) BlobLink {
	return BlobLink{Repo: repo, Digest: digest.Digest(name), Blob: b}
}

// Removal lists links of one repository to remove together: what eviction
// or the startup check decided is gone.
type Removal struct {
	Repo      string
	Tags      []string
	Manifests []digest.Digest
	Blobs     []digest.Digest
}
