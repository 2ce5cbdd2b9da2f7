package engine

import "github.com/airlock/airlock/cache/meta"

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
