package badgermeta

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/airlock/airlock/cache/meta"
	"github.com/dgraph-io/badger/v4"
)

// kPin records pins set at run time (by the control module, for bootstrap
// content), keyed by reference and owner so that two owners can pin the
// same image; pins from the configuration file are not stored.
const kPin = "p"

// PutPins implements meta.PinStore.
func (x *Index) PutPins(ctx context.Context, ps []meta.Pin) error {
	return wrap("put pins", x.durable(meta.OriginPush, x.update(func(txn *badger.Txn) error {
		for _, p := range ps {
			if err := set(txn, key(kPin, p.Ref, p.Owner), p); err != nil {
				return err
			}
		}
		return nil
	})))
}

// DeletePins implements meta.PinStore.
func (x *Index) DeletePins(ctx context.Context, refs []string, owner string) (int, error) {
	n := 0
	err := x.update(func(txn *badger.Txn) error {
		wanted := map[string]bool{}
		for _, r := range refs {
			wanted[r] = true
		}
		var drop [][]byte
		it := txn.NewIterator(badger.IteratorOptions{Prefix: key(kPin, ""), PrefetchValues: true})
		for it.Rewind(); it.Valid(); it.Next() {
			p, err := pinOf(it.Item())
			if err != nil {
				it.Close()
				return err
			}
			if wanted[p.Ref] || (owner != "" && p.Owner == owner) {
				drop = append(drop, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		for _, k := range drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		n = len(drop)
		return nil
	})
	return n, wrap("delete pins", err)
}

// pinOf decodes a stored pin; its reference is in the key.
func pinOf(item *badger.Item) (meta.Pin, error) {
	var p meta.Pin
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
		return meta.Pin{}, err
	}
	rest := string(item.Key()[len(kPin)+len(sep):])
	p.Ref, _, _ = strings.Cut(rest, sep)
	return p, nil
}

// Pins implements meta.PinStore; the key order is reference, then owner.
func (x *Index) Pins(ctx context.Context) ([]meta.Pin, error) {
	var out []meta.Pin
	err := x.db.View(func(txn *badger.Txn) error {
		prefix := key(kPin, "")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			p, err := pinOf(it.Item())
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, wrap("pins", err)
}
