// Package azstate keeps the control module's state in a container of Azure
// Blob Storage, shared by the replicas that use it: one JSON blob,
// control/state.json, whose ETag is the state's version and which is
// written only while it is still at the version its writer read (If-Match,
// or If-None-Match: * for the first state), and a section one replica at
// a time runs in, held by the lease of the blob control/lock.
package azstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// The blobs of the control state in the container.
const (
	// StateBlob holds the whole state as JSON (deploy.State).
	StateBlob = "control/state.json"
	// LockBlob is empty; its lease is the exclusive section.
	LockBlob = "control/lock"
)

// The exclusive section's lease: a replica that dies inside it holds it
// back from the others for at most lockLease.
const (
	lockLease    = azure.MinLease
	lockRenew    = lockLease / 3
	lockRetryMin = 50 * time.Millisecond
	lockRetryMax = time.Second
)

// Store is a deploy.Store on an Azure container. It is safe for concurrent
// use, by any number of processes on the same container.
type Store struct {
	ctr *azure.Container
	log *zap.Logger
}

var (
	_ deploy.Store      = (*Store)(nil)
	_ deploy.Versioner  = (*Store)(nil)
	_ deploy.Serializer = (*Store)(nil)
)

// New returns the store of the control state in ctr. It contacts nothing:
// a replica may start before its storage answers (give the Service
// deploy.WithDeferredLoad then).
func New(ctr *azure.Container, log *zap.Logger) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{ctr: ctr, log: log}
}

// Load implements deploy.Store; the version is the blob's ETag, "" while
// there is no blob.
func (s *Store) Load(ctx context.Context) (*deploy.State, string, error) {
	b, props, err := s.ctr.Get(ctx, StateBlob)
	if errors.Is(err, azure.ErrNotFound) {
		return deploy.NewState(), "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("control state: %w", err)
	}
	st := deploy.NewState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, "", fmt.Errorf("control state: %s at %s: %w", StateBlob, props.ETag, err)
	}
	return st.Clone(), string(props.ETag), nil // Clone makes null maps empty
}

// Save implements deploy.Store with one conditional Put Blob: If-Match the
// base ETag, or create-only for base "". A precondition that fails (or a
// blob deleted since) is deploy.ErrStale.
func (s *Store) Save(ctx context.Context, st *deploy.State, base string) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("control state: %w", err)
	}
	cond := azure.Cond{IfMatch: azcore.ETag(base)}
	if base == "" {
		cond = azure.Cond{IfNoneMatch: azcore.ETagAny}
	}
	etag, err := s.ctr.Put(ctx, StateBlob, b, cond)
	switch {
	case errors.Is(err, azure.ErrConditionNotMet), errors.Is(err, azure.ErrExists), errors.Is(err, azure.ErrNotFound):
		return "", fmt.Errorf("control state: %w: %w", deploy.ErrStale, err)
	case err != nil:
		return "", fmt.Errorf("control state: %w", err)
	}
	return string(etag), nil
}

// Version implements deploy.Versioner with one Get Blob Properties.
func (s *Store) Version(ctx context.Context) (string, error) {
	p, err := s.ctr.Stat(ctx, StateBlob)
	if errors.Is(err, azure.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("control state: %w", err)
	}
	return string(p.ETag), nil
}

// Exclusive implements deploy.Serializer: fn runs holding the lease of
// LockBlob (created if missing), renewed while fn runs; fn's context ends
// if a renewal fails for good. A caller that finds the lease held tries
// again, backing off up to a second, until ctx ends.
func (s *Store) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	l, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	err, lost := l.Hold(ctx, lockRenew, fn)
	if lost != nil {
		s.log.Warn("control state: the exclusive section's lease was lost while in it", zap.Error(lost))
		return errors.Join(err, fmt.Errorf("control state: exclusive section: %w", lost))
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rerr := l.Release(rctx); rerr != nil {
		// The lease runs out by itself within lockLease.
		s.log.Warn("control state: release the exclusive section", zap.Error(rerr))
	}
	return err
}

// acquire takes the lease of LockBlob, waiting while another holds it.
func (s *Store) acquire(ctx context.Context) (*azure.Lease, error) {
	wait := lockRetryMin
	for {
		l, err := s.ctr.AcquireLease(ctx, LockBlob, lockLease)
		switch {
		case err == nil:
			return l, nil
		case errors.Is(err, azure.ErrNotFound):
			_, err := s.ctr.Put(ctx, LockBlob, nil, azure.Cond{IfNoneMatch: azcore.ETagAny})
			if err != nil && !errors.Is(err, azure.ErrExists) && !errors.Is(err, azure.ErrLeaseConflict) {
				return nil, fmt.Errorf("control state: create %s: %w", LockBlob, err)
			}
			continue
		case !errors.Is(err, azure.ErrLeaseConflict):
			return nil, fmt.Errorf("control state: exclusive section: %w", err)
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("control state: waiting for the exclusive section: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, lockRetryMax)
	}
}
