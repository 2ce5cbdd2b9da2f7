package azmeta

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// accessRecord is the record of meta/a/<repo>!<digest>!. The cache keeps
// access times in memory and flushes them once a minute (cache/evict's
// tracker): one PutAccess is a batch, written x.conc records at a time,
// and a walk reads them back 5,000 per request from the listing's
// metadata copies.
type accessRecord struct {
	At time.Time `json:"t"`
}

// PutAccess implements meta.AccessRecorder: each record replaces the
// previous one of its repository and digest (a replica's flush replaces
// another's; each is at most a flush interval old).
func (x *Index) PutAccess(ctx context.Context, as []meta.Access) error {
	return wrap("put access", x.parallel(ctx, len(as), func(ctx context.Context, i int) error {
		_, err := x.put(ctx, accessName(as[i].Repo, as[i].Digest), accessRecord{At: as[i].At}, azure.Cond{})
		return err
	}))
}

// EachAccess implements meta.AccessLog.
func (x *Index) EachAccess(ctx context.Context, fn func(meta.Access) error) error {
	return wrap("access", each(ctx, x, kAccess, kindPrefix(kAccess), func(parts []string, _ azcore.ETag, a accessRecord) error {
		if len(parts) != 2 {
			return nil
		}
		return fn(meta.Access{Repo: parts[0], Digest: digest.Digest(parts[1]), At: a.At})
	}))
}

// DeleteAccess implements meta.AccessLog.
func (x *Index) DeleteAccess(ctx context.Context, as []meta.Access) error {
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = accessName(a.Repo, a.Digest)
	}
	return wrap("delete access", x.removeAll(ctx, names))
}

// PutPins implements meta.PinStore; the pins are durable when it returns.
func (x *Index) PutPins(ctx context.Context, ps []meta.Pin) error {
	return wrap("put pins", x.parallel(ctx, len(ps), func(ctx context.Context, i int) error {
		_, err := x.put(ctx, pinName(ps[i].Ref, ps[i].Owner), ps[i], azure.Cond{})
		return err
	}))
}

// DeletePins implements meta.PinStore. A pin another caller removed
// meanwhile is not counted.
func (x *Index) DeletePins(ctx context.Context, refs []string, owner string) (int, error) {
	wanted := map[string]bool{}
	for _, r := range refs {
		wanted[r] = true
	}
	var drop []string
	err := x.eachPin(ctx, func(p meta.Pin) error {
		if wanted[p.Ref] || owner != "" && p.Owner == owner {
			drop = append(drop, pinName(p.Ref, p.Owner))
		}
		return nil
	})
	if err != nil {
		return 0, wrap("delete pins", err)
	}
	var n atomic.Int64
	err = x.parallel(ctx, len(drop), func(ctx context.Context, i int) error {
		err := x.del(ctx, drop[i], azure.Cond{})
		if err == nil {
			n.Add(1)
		}
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		return err
	})
	return int(n.Load()), wrap("delete pins", err)
}

// Pins implements meta.PinStore; the listing's order is reference, then
// owner.
func (x *Index) Pins(ctx context.Context) ([]meta.Pin, error) {
	var out []meta.Pin
	err := x.eachPin(ctx, func(p meta.Pin) error {
		out = append(out, p)
		return nil
	})
	return out, wrap("pins", err)
}

// eachPin calls fn for every stored pin, in name order; the reference and
// owner come from the name.
func (x *Index) eachPin(ctx context.Context, fn func(meta.Pin) error) error {
	return each(ctx, x, kPin, kindPrefix(kPin), func(parts []string, _ azcore.ETag, p meta.Pin) error {
		if len(parts) != 2 {
			return nil
		}
		p.Ref, p.Owner = parts[0], parts[1]
		return fn(p)
	})
}
