package badgermeta

import (
	"context"

	"github.com/dgraph-io/badger/v4"
)

// link runs a write that adds links (tags, manifests, blobs) while no
// Exclusive section runs.
func (x *Index) link(fn func(txn *badger.Txn) error) error {
	x.gate.RLock()
	defer x.gate.RUnlock()
	return x.update(fn)
}

// Exclusive implements meta.Remover: PutTag, PutManifest and LinkBlob wait
// on the gate until fn returns. The garbage collector and the startup
// check use it so that nothing is linked between deciding what is
// unreferenced and deleting it.
func (x *Index) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	x.gate.Lock()
	defer x.gate.Unlock()
	return fn(ctx)
}
