package meta

import (
	"encoding/json"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// kPin records pins set at run time (by the control module, for bootstrap
// content); pins from the configuration file are not stored.
const kPin = "p"

// Pin is an image reference ("repo:tag" or "repo@digest") that eviction
// must keep.
type Pin struct {
	Ref string `json:"-"`
	// Owner groups pins set together (e.g. a cluster's bootstrap set) so
	// they can be replaced or dropped together.
	Owner string    `json:"o,omitempty"`
	Added time.Time `json:"t"`
}

// PutPins records pins.
func (x *Index) PutPins(ps []Pin) error {
	return wrap("put pins", x.update(func(txn *badger.Txn) error {
		for _, p := range ps {
			if err := set(txn, key(kPin, p.Ref), p); err != nil {
				return err
			}
		}
		return nil
	}))
}

// DeletePins removes the pins of refs, and every pin of owner when owner
// is not empty; it returns how many it removed.
func (x *Index) DeletePins(refs []string, owner string) (int, error) {
	n := 0
	err := x.update(func(txn *badger.Txn) error {
		drop := map[string]bool{}
		for _, r := range refs {
			if _, err := txn.Get(key(kPin, r)); err == nil {
				drop[r] = true
			}
		}
		if owner != "" {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: key(kPin, ""), PrefetchValues: true})
			for it.Rewind(); it.Valid(); it.Next() {
				var p Pin
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err == nil && p.Owner == owner {
					drop[string(it.Item().Key()[len(kPin)+len(sep):])] = true
				}
			}
			it.Close()
		}
		for r := range drop {
			if err := txn.Delete(key(kPin, r)); err != nil {
				return err
			}
		}
		n = len(drop)
		return nil
	})
	return n, wrap("delete pins", err)
}

// Pins lists the stored pins, sorted by reference.
func (x *Index) Pins() ([]Pin, error) {
	var out []Pin
	err := x.db.View(func(txn *badger.Txn) error {
		prefix := key(kPin, "")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var p Pin
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
				return err
			}
			p.Ref = string(it.Item().Key()[len(prefix):])
			out = append(out, p)
		}
		return nil
	})
	return out, wrap("pins", err)
}
