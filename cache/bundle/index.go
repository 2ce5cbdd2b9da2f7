package bundle

import "github.com/airlock/airlock/cache/meta"

// Index is what an import needs of the metadata index: linking the blobs
// and manifests of each image and its tag, and, to undo a refused import,
// reading what it replaces and removing a repository record it created.
type Index interface {
	meta.BlobLinker
	meta.ManifestStore
	meta.TagStore
	meta.Catalog
	meta.Remover
}
