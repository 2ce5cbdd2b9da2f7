package bundle

import "github.com/airlock/airlock/cache/meta"

// Index is what an import needs of the metadata index: linking the blobs
// and manifests of each image, and its tag.
type Index interface {
	meta.BlobLinker
	meta.ManifestStore
}
