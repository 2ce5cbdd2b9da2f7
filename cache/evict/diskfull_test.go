package evict_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/internal/polltest"
	"github.com/opencontainers/go-digest"
)

// fullDisk makes the store's writes fail with ENOSPC: at the start of an
// ingest (as preallocation reports a full disk) or after some bytes.
type fullDisk struct {
	evict.Store
	atStart   atomic.Bool
	afterByte atomic.Int64 // > 0: writes past this offset fail
}

func (s *fullDisk) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	if s.atStart.Load() {
		return nil, fmt.Errorf("fsstore: ingest %s: reserve %d bytes: %w", d, size, syscall.ENOSPC)
	}
	w, err := s.Store.Ingest(ctx, d, size)
	if err != nil {
		return nil, err
	}
	return &fullIngest{Ingest: w, s: s}, nil
}

type fullIngest struct {
	content.Ingest
	s *fullDisk
}

func (w *fullIngest) Write(p []byte) (int, error) {
	if limit := w.s.afterByte.Load(); limit > 0 && w.Written()+int64(len(p)) > limit {
		return 0, fmt.Errorf("fsstore: write: %w", syscall.ENOSPC)
	}
	return w.Ingest.Write(p)
}

// A full disk fails the fill cleanly: a 5xx when it is known before the
// response starts, an aborted transfer (never a complete wrong body) when
// it strikes in the middle; nothing partial is stored, the collector is
// woken, and once space is back the same pulls succeed.
func TestDiskFullDuringFill(t *testing.T) {
	t.Parallel()
	var fd *fullDisk
	e := newEnvWith(t, evict.Policy{}, func(s evict.Store) evict.Store {
		fd = &fullDisk{Store: s}
		return fd
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.col.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	runs := func() float64 { return e.metric("airlock_gc_runs_total") }
	polltest.Until(t, 10*time.Second, "the first collection", func() bool { return runs() >= 1 })

	img := e.up.PushImage(t, "oss/full:1", 300_000, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	status := func(path string) int {
		t.Helper()
		resp, err := httpClient.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Full before anything is served: 5xx for the manifest, then the blob.
	fd.atStart.Store(true)
	if code := status("/v2/" + prefix + "oss/full/manifests/1"); code < 500 {
		t.Fatalf("manifest with a full disk: %d, want 5xx", code)
	}
	fd.atStart.Store(false)
	if code := status("/v2/" + prefix + "oss/full/manifests/1"); code != 200 {
		t.Fatalf("manifest: %d", code)
	}
	before := runs()
	fd.atStart.Store(true)
	blob := "/v2/" + prefix + "oss/full/blobs/" + ld.String()
	if code := status(blob); code < 500 {
		t.Fatalf("blob with a full disk: %d, want 5xx", code)
	}
	polltest.Until(t, 10*time.Second, "a collection woken by the full disk", func() bool { return runs() > before })
	fd.atStart.Store(false)

	// Full in the middle of the fill: the transfer is cut, nothing stored.
	fd.afterByte.Store(100_000)
	if _, _, err := e.get(blob, digest.Digest(ld.String())); err == nil {
		t.Fatal("a fill that ran out of disk completed")
	} else {
		t.Logf("client saw: %v", err)
	}
	if _, err := e.store.Stat(context.Background(), digest.Digest(ld.String())); err == nil {
		t.Fatal("a partial blob was committed")
	}
	polltest.Until(t, 10*time.Second, "the partial ingest to be removed", func() bool {
		ing, _ := os.ReadDir(filepath.Join(e.dir, "content", "ingest"))
		return len(ing) == 0 && !e.eng.Filling(digest.Digest(ld.String()))
	})

	// Space is back: the image pulls.
	fd.afterByte.Store(0)
	if err := e.pull(prefix+"oss/full", "1"); err != nil {
		t.Fatalf("after space came back: %v", err)
	}
	e.consistent()
}
