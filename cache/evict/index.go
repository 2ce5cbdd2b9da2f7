package evict

import "github.com/airlock/airlock/cache/meta"

// Index is what the collector needs of the metadata index: a walk of every
// tag, manifest and blob link, the access times, the stored pins, and the
// exclusive removal of what it decided is gone.
type Index interface {
	meta.Walker
	meta.AccessLog
	meta.PinStore
	meta.Remover
}
