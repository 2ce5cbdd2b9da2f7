package engine

import (
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// Index is what the engine needs of the metadata index: tags, manifests
// and blob links to serve and fill, cached upstream referrers, the
// catalog, and a walk of a repository's manifests (referrers of pushed
// ones). badgermeta.Index and memmeta.Index implement it.
type Index interface {
	meta.TagStore
	meta.ManifestStore
	meta.BlobLinker
	meta.ReferrersCache
	meta.Catalog
	meta.Walker
}

// peerLinks is an Index that caches what it read (azmeta's, shared by the
// replicas of a cluster): told that the owner of a manifest reference
// answered this replica's relay of it (the owner links what it fetched
// before it answers), it no longer serves a NotFound it cached before the
// owner linked it, and reads the record again (azmeta reads it ahead).
type peerLinks interface {
	PeerLinked(repo, ref string)
}

// peerLinked tells the index that a peer linked ref (a tag or a digest)
// of repo and the manifest d it names.
func (e *Engine) peerLinked(repo, ref string, d digest.Digest) {
	pl, ok := e.index.(peerLinks)
	if !ok {
		return
	}
	pl.PeerLinked(repo, ref)
	if d != "" && d.String() != ref {
		pl.PeerLinked(repo, d.String())
	}
}
