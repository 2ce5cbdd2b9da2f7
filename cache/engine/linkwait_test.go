package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// A fill's last byte does not wait for its link. While a collector's
// exclusive section holds linking writes back, a cold GET receives every
// byte and the fill's verdict, and a second GET meanwhile is served from
// the fill without asking the upstream; the link is written once the
// section ends.
func TestFillDoesNotWaitForItsLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		d, want := layer(t, e.up, upRepo+":3.10", 1<<20)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		in, hold, ended := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			ended <- s.index.(meta.Remover).Exclusive(ctx, func(context.Context) error {
				close(in)
				<-hold
				return nil
			})
		}()
		<-in
		released := false
		release := func() {
			if !released {
				released = true
				close(hold)
				if err := <-ended; err != nil {
					t.Error(err)
				}
			}
		}
		defer release()
		for i := range 2 {
			got, err := e.read(ctx, repo, d)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("GET %d while linking waits: %d bytes, %v", i+1, len(got), err)
			}
		}
		if n := e.up.Count("GET", "/blobs/"+d.String()); n != 1 {
			t.Fatalf("%d upstream GETs, want 1", n)
		}
		if _, err := s.index.Blob(ctx, repo, d); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("linked while the section held links back: %v", err)
		}
		release()
		if err := e.eng.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.index.Blob(ctx, repo, d); err != nil {
			t.Fatalf("not linked after the section: %v", err)
		}
	})
}

// racingIndex fails the first links with meta.ErrRaced, as a shared index
// does when a link may have missed another replica's collection.
type racingIndex struct {
	engine.Index
	races atomic.Int32
}

func (r *racingIndex) LinkBlob(ctx context.Context, repo string, d digest.Digest, b meta.Blob) error {
	if r.races.Add(-1) >= 0 {
		return fmt.Errorf("shared index: %w", meta.ErrRaced)
	}
	return r.Index.LinkBlob(ctx, repo, d, b)
}

// A fill's link that raced a collection is written again: the blob ends
// linked, its client never noticed.
func TestFillRelinksAfterARace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		idx := &racingIndex{Index: s.index}
		idx.races.Store(2)
		s.index = idx
		e := newEnv(t, s, envOpt{})
		d, want := layer(t, e.up, upRepo+":3.10", 256<<10)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if got, err := e.read(ctx, repo, d); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("GET: %d bytes, %v", len(got), err)
		}
		if err := e.eng.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.index.Blob(ctx, repo, d); err != nil || idx.races.Load() != -1 {
			t.Fatalf("after two raced links: %v, %d left", err, idx.races.Load())
		}
	})
}
