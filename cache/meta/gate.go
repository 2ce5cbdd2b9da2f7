package meta

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// update runs a write that adds links (tags, manifests, blobs) while no
// Exclusive section runs.
func (x *Index) update(fn func(txn *badger.Txn) error) error {
	x.gate.RLock()
	defer x.gate.RUnlock()
	return x.retry(fn)
}

// maxConflicts bounds how often a transaction is retried after a conflict.
const maxConflicts = 16

// retry runs a read-write transaction, again when a concurrent one changed
// what it read (two first writes to a repository both create its record;
// eviction removes an emptied repository's record).
func (x *Index) retry(fn func(txn *badger.Txn) error) error {
	var err error
	for range maxConflicts {
		if err = x.db.Update(fn); !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}

// Exclusive runs fn while no link is being added: PutTag, PutManifest and
// LinkBlob wait until it returns. The garbage collector and the startup
// check use it so that nothing is linked between deciding what is
// unreferenced and deleting it. fn may read and may call Drop, DeleteTag,
// DeleteManifest and UnlinkBlob, but must not call the methods that wait.
func (x *Index) Exclusive(fn func() error) error {
	x.gate.Lock()
	defer x.gate.Unlock()
	return fn()
}
