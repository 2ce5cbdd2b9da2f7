package meta

import "github.com/dgraph-io/badger/v4"

// link runs a write that adds links (tags, manifests, blobs) while no
// Exclusive section runs.
func (x *Index) link(fn func(txn *badger.Txn) error) error {
	x.gate.RLock()
	defer x.gate.RUnlock()
	return x.update(fn)
}

// Exclusive runs fn while no link is being added: PutTag, PutManifest and
// LinkBlob wait until it returns. The garbage collector and the startup
// check use it so that nothing is linked between deciding what is
// unreferenced and deleting it. fn may read and may call Remove, DeleteTag,
// DeleteManifest, RemoveManifest and UnlinkBlob, but must not call the
// methods that wait.
func (x *Index) Exclusive(fn func() error) error {
	x.gate.Lock()
	defer x.gate.Unlock()
	return fn()
}
