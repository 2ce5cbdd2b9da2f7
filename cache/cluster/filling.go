package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// unclaimedFresh is how long a fill record nobody leased yet counts as a
// fill starting: its creator takes the lease right after creating it.
const unclaimedFresh = time.Minute

// FillRecords tells from the fill records whether any replica is filling
// a blob, for a garbage collector that must not delete a blob a replica
// is about to link. It is safe for concurrent use.
type FillRecords struct {
	c   *azure.Container
	now func() time.Time
}

// NewFillRecords reads the fill records of c.
func NewFillRecords(c *azure.Container) *FillRecords { return &FillRecords{c: c, now: time.Now} }

// Filling reports whether blob d has a live fill record: one whose lease
// is held (or breaking), or one created less than a minute ago whose
// creator has not leased it yet. A record whose lease expired or was
// broken is an abandoned fill, not a live one.
func (r *FillRecords) Filling(ctx context.Context, d digest.Digest) (bool, error) {
	if err := d.Validate(); err != nil {
		return false, fmt.Errorf("cluster: filling %q: %w", d, err)
	}
	name := FillName(d)
	p, err := r.c.Client().NewBlobClient(name).GetProperties(ctx, nil)
	if err = azure.Classify("stat fill record", name, err); errors.Is(err, azure.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	switch azure.Value(p.LeaseState) {
	case lease.StateTypeLeased, lease.StateTypeBreaking:
		return true, nil
	case lease.StateTypeAvailable, "":
		return r.now().Sub(azure.Value(p.LastModified)) < unclaimedFresh, nil
	}
	return false, nil
}
