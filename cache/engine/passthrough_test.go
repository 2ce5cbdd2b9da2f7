package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// noRoomStore has no room for blobs larger than limit, as a store whose
// quota pins fill.
type noRoomStore struct {
	content.Store
	limit int64
}

func (s noRoomStore) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	if size > s.limit {
		return nil, fmt.Errorf("ingest %s: %w", d, content.ErrNoRoom)
	}
	return s.Store.Ingest(ctx, d, size)
}

// readFor reads n bytes of b, failing the test if that takes too long.
func readFor(t *testing.T, b *cache.Blob, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(b.Content, buf)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("reading %d bytes never finished", n)
	}
	return buf
}

// A blob larger than the pass-through window, which the store has no room
// for: a reader that stops holds the others only for the stall timeout,
// then it is cut off; a request that comes after the window left the first
// byte gets a fill of its own; every body that completes is the blob,
// verified, and nothing is kept.
func TestPassThroughWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		under := s.content
		s.content = noRoomStore{Store: under, limit: 1 << 20}
		e := newEnv(t, s, envOpt{engine: []engine.Option{engine.WithStallTimeout(300 * time.Millisecond)}})
		d, want := layer(t, e.up, upRepo+":1", 6<<20)
		if len(want) <= engine.PassWindow+engine.PassWindow/8 {
			t.Fatalf("a layer of %d bytes does not outgrow the window", len(want))
		}
		ctx := context.Background()
		a, err := e.eng.Blob(ctx, repo, d, false)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Content.Close()
		stalled, err := e.eng.Blob(ctx, repo, d, false)
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Content.Close()
		readFor(t, stalled, 256<<10) // then it reads no more

		// a reads past the window beyond the stalled reader: it can only
		// once the stalled one is cut off.
		head := readFor(t, a, engine.PassWindow+engine.PassWindow/8)
		if body, err := e.read(ctx, repo, d); err != nil || !bytes.Equal(body, want) {
			t.Fatalf("the late request: %d bytes, %v", len(body), err)
		}
		rest, err := io.ReadAll(a.Content)
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil || !bytes.Equal(append(head, rest...), want) {
			t.Fatalf("the first request: %d bytes, %v", len(head)+len(rest), err)
		}
		if _, err := stalled.Content.Read(make([]byte, 1)); !errors.Is(err, engine.ErrSlowReader) {
			t.Fatalf("the stalled reader reads on: %v", err)
		}
		if n := e.up.Count("GET", "/blobs/"+d.String()); n != 2 {
			t.Fatalf("upstream GETs %d, want 2 (the shared fill and the late request's own)", n)
		}
		if n := e.metric("airlock_fill_uncached_total", "rule", "aks-managed-mcr", "kind", "blob"); n != 2 {
			t.Fatalf("blobs passed through: %v, want 2", n)
		}
		if _, err := under.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("a blob passed through was kept: %v", err)
		}
	})
}

// A pass-through verifies as a kept fill does: a body that does not match
// its digest fails every reader's wait, so no response completes.
func TestPassThroughVerifies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		s.content = noRoomStore{Store: s.content, limit: 0}
		e := newEnv(t, s, envOpt{})
		d, _ := layer(t, e.up, upRepo+":1", 100_000)
		e.up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/blobs/" + d.String(), Corrupt: true})
		_, err := e.read(context.Background(), repo, d)
		// Failed before the answer started (503), or during it (aborted).
		var mismatch *content.MismatchError
		if !errors.As(err, &mismatch) && !errors.Is(err, engine.ErrFillFailed) {
			t.Fatalf("a corrupt body passed through: %v", err)
		}
	})
}
