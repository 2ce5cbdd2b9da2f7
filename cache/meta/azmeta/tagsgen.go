package azmeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/storage/azure"
)

// Tags move under every replica, and a tag another replica moved must be
// seen here within the mutable TTL. Rather than read every cached tag
// again once it is older than that, a replica reads the ETag of one
// record, the tags generation, which every change of tag records bumps
// once the change is written: while that ETag is the one read before a
// tag was cached, no tag changed anywhere since. A warm pull of nine tags
// more than the mutable TTL after the last one costs one request, not
// nine. A change whose bump failed (its caller got the error) or that a
// build without generations wrote is seen within tagsMaxAge.
//
// When a reading finds that another replica moved the generation, this
// replica's outdated tags are read again in the background once it has
// stopped moving (tagsMoved): after a rollout, a pull does not read them
// one per image of its set on its way.
const (
	tagsGenName = prefix + "tags"
	// tagsMaxAge bounds how long a cached tag is served on an unchanged
	// generation alone.
	tagsMaxAge = time.Minute
	// noGen stands for a generation record that does not exist yet (no
	// tag was ever changed by a build that bumps it).
	noGen azcore.ETag = "none"
)

// errGenStale is tagsGeneration's answer when its read took longer than
// the mutable TTL: the reading is too old to vouch for a cached tag.
var errGenStale = errors.New("azmeta: the tags generation read took longer than the mutable TTL")

// genReading is a reading of the tags generation: etag as of sent, the
// time its request was sent (zero: no reading).
type genReading struct {
	etag azcore.ETag
	sent time.Time
}

// freshAt reports whether the reading was sent less than ttl before now.
func (r genReading) freshAt(now time.Time, ttl time.Duration) bool {
	return !r.sent.IsZero() && now.Sub(r.sent) < ttl
}

// tagsGen is this replica's latest reading of the tags generation.
type tagsGen struct {
	mu   sync.Mutex
	last genReading
}

func (g *tagsGen) latest() genReading {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// saw records r unless a reading sent later is recorded, and reports
// whether r finds the generation moved from the one recorded before.
func (g *tagsGen) saw(r genReading) (moved bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !r.sent.After(g.last.sent) {
		return false
	}
	moved = g.last.etag != "" && g.last.etag != r.etag
	g.last = r
	return moved
}

// forget makes the reading stale: the generation changed (a peer changed
// a tag just now), or may have (this replica's bump failed). Its etag
// stays, for the next reading to tell whether it moved.
func (g *tagsGen) forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last.sent = time.Time{} // no longer fresh; its etag tells the next reading whether it moved
}

// tagsGeneration returns the tags generation as of a read sent less than
// the mutable TTL ago: the latest reading if it is that recent, else a new
// one (one request for every caller waiting on it).
func (x *Index) tagsGeneration(ctx context.Context) (azcore.ETag, error) {
	if r := x.tgen.latest(); r.freshAt(x.now(), x.mutableTTL) {
		return r.etag, nil
	}
	ch := x.flight.DoChan("\x00tags-generation", func() (any, error) {
		r := genReading{sent: x.now()}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		p, err := x.ctr.Stat(rctx, tagsGenName)
		x.m.request("stat", err)
		switch {
		case err == nil:
			r.etag = p.ETag
		case errors.Is(err, azure.ErrNotFound):
			r.etag = noGen
		default:
			return nil, fmt.Errorf("azmeta: read the tags generation: %w", err)
		}
		if x.tgen.saw(r) {
			x.tagsMoved() // another replica changed a tag since
		}
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		r := res.Val.(genReading)
		if !r.freshAt(x.now(), x.mutableTTL) {
			return "", errGenStale
		}
		return r.etag, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// tagsChanged bumps the tags generation after a change of tag records,
// whatever the change's outcome (a failed write may still have been
// written), and returns the change's error joined with the bump's. Every
// operation that writes or removes tag records calls it once, after them
// (PutTag, PutManifest with a tag, DeleteTag, RemoveManifest, Remove): a
// path that did not would leave other replicas serving the old tag for up
// to tagsMaxAge. The bump is sent even when ctx has ended: the change may
// be in Azure.
func (x *Index) tagsChanged(ctx context.Context, err error) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
	defer cancel()
	body, _ := json.Marshal(struct {
		By string    `json:"by"`
		At time.Time `json:"at"`
	}{x.holder, x.now().UTC()}) // a string and a time always marshal
	sent := x.now()
	etag, berr := x.ctr.Put(bctx, tagsGenName, body, azure.Cond{})
	x.m.request("put", berr)
	if berr != nil {
		x.tgen.forget()
		return errors.Join(err, fmt.Errorf("azmeta: bump the tags generation (other replicas see the change within %v): %w", tagsMaxAge, berr))
	}
	// The bump is a reading too: every bump that ended before it was sent
	// is behind etag.
	x.tgen.saw(genReading{etag, sent})
	return err
}

// tagStamp returns the generation to stamp a tag read with, read before
// the tag record: "" when kind is not a tag, or the generation could not
// be read (the tag is then cached for the mutable TTL only).
func (x *Index) tagStamp(ctx context.Context, kind string) azcore.ETag {
	if kind != kTag || x.mutableTTL <= 0 {
		return ""
	}
	gen, err := x.tagsGeneration(ctx)
	if err != nil {
		return ""
	}
	return gen
}

// stillCurrent reports whether a cached record stamped with gen at at may
// be served: it is younger than the mutable TTL, or it is a tag and the
// tags generation is still gen.
func (x *Index) stillCurrent(ctx context.Context, gen azcore.ETag, at time.Time) bool {
	if gen == "" || x.now().Sub(at) < x.mutableTTL {
		return true
	}
	cur, err := x.tagsGeneration(ctx)
	return err == nil && cur == gen
}
