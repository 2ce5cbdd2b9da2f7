package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// crashConfig writes a configuration listening on addr, storage in dir,
// rule aks-managed-mcr pulling from upstream, fills stalled after 5 s.
func crashConfig(t *testing.T, addr, dir, upstream string) string {
	return configtest.Write(t, configtest.Serve(addr, dir, upstream, configtest.MCRRule+"cache:\n  stallTimeout: 5s\n"))
}

// acceptsPush reports whether the server takes pushes (once push lands, the
// crash test covers them too).
func acceptsPush(base string) bool {
	resp, err := http.Post(base+"/v2/crashtest/pushed/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted
}

// SIGKILL in the middle of fills (and pushes, if the server accepts them),
// many times at random points, including during the startup check: no
// complete response ever carries wrong bytes, every restart repairs what
// needs it, every image pulls afterwards, and the store and the index
// agree at the end.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	images := map[string]digest.Digest{}
	var repos []string
	// Each round brings new images, so that there are fills to interrupt.
	addImages := func(round int) []string {
		var fresh []string
		for i := range 3 {
			repo := fmt.Sprintf("oss/crash/r%d-img%d", round, i)
			var d fmt.Stringer
			if i == 2 {
				idx := up.PushIndex(t, repo+":1", 300_000)
				d, _ = idx.Digest()
			} else {
				img := up.PushImage(t, repo+":1", int64(250_000+i*250_000), 2)
				d, _ = img.Digest()
			}
			images["aks-managed-repository/"+repo] = digest.Digest(d.String())
			fresh = append(fresh, "aks-managed-repository/"+repo)
		}
		repos = append(repos, fresh...)
		return fresh
	}
	slow := throttle(t, up.URL(), 32<<10, 4*time.Millisecond) // ~8 MB/s per fill
	dir := t.TempDir()
	addr := upstreamtest.Unreachable(t)
	cfg := crashConfig(t, addr, dir, slow)
	midFill := 0

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var pushedMu sync.Mutex
	pushed := map[string]digest.Digest{} // pushes that completed
	pushes := false
	const rounds = 8
	for round := range rounds {
		p := startProc(t, cfg, addr)
		if round%4 == 3 {
			// Kill during startup, maybe during the store check.
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			p.Kill()
			continue
		}
		p.waitReady()
		fresh := addImages(round)
		if round == 0 {
			pushes = acceptsPush(p.base)
			if !pushes {
				t.Log("the server does not accept pushes yet: covering fills only")
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var corrupt []error
		var mu sync.Mutex
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pl := newPuller(p.base)
				for i := 0; ctx.Err() == nil; i++ {
					r := fresh[(w+i)%len(fresh)] // new ones first, then any
					if i >= len(fresh) {
						r = repos[rng2(w, i)%len(repos)]
					}
					err := pl.pull(r, "1", "")
					var ce *errCorrupt
					if errors.As(err, &ce) {
						mu.Lock()
						corrupt = append(corrupt, err)
						mu.Unlock()
					}
					if err != nil {
						return // the server is going away
					}
				}
			}()
		}
		if pushes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					img, _ := random.Image(300_000, 2)
					tag := fmt.Sprintf("r%d-%d", round, i)
					ref, _ := name.ParseReference(addr+"/crashtest/pushed:"+tag, name.Insecure)
					if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
						return
					}
					d, _ := img.Digest()
					pushedMu.Lock()
					pushed[tag] = digest.Digest(d.String())
					pushedMu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		p.Kill()
		if ing, _ := os.ReadDir(filepath.Join(dir, "content", "ingest")); len(ing) > 0 {
			midFill++
		}
		cancel()
		wg.Wait()
		for _, err := range corrupt {
			t.Errorf("round %d: %v", round, err)
		}
	}

	// After the last crash: every image pulls completely.
	p := startProcReady(t, cfg, addr)
	ingest, _ := os.ReadDir(filepath.Join(dir, "content", "ingest"))
	if len(ingest) != 0 {
		t.Errorf("ingest leftovers after restart: %d", len(ingest))
	}
	pl := newPuller(p.base)
	for r, want := range images {
		if err := pl.pull(r, "1", want); err != nil {
			t.Errorf("%s after crashes: %v", r, err)
		}
	}
	for tag, want := range pushed {
		if err := pl.pull("crashtest/pushed", tag, want); err != nil {
			t.Errorf("pushed %s (push completed before a crash): %v", tag, err)
		}
	}
	if code := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.Stderr)
	}
	if strings.Contains(p.Stderr.String(), `"level":"error"`) {
		t.Errorf("errors logged:\n%s", p.Stderr)
	}
	verifyAtRest(t, dir)
	if midFill == 0 {
		t.Fatal("no kill landed during a fill: the test exercised nothing")
	}
	t.Logf("%d rounds, %d killed with fills in flight, %d images, %d pushes completed", rounds, midFill, len(images), len(pushed))
}

// rng2 spreads workers over the images deterministically.
func rng2(w, i int) int { return w*7 + i*3 }

// verifyAtRest re-hashes every file in the store and checks every link of
// the index against it.
func verifyAtRest(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	store, err := fsstore.New(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[digest.Digest]int64{}
	err = store.Walk(ctx, func(info content.Info) error {
		b, err := content.ReadAll(ctx, store, info.Digest)
		if err != nil {
			return err
		}
		if digest.FromBytes(b) != info.Digest {
			t.Errorf("stored file %s does not match its digest (%d bytes)", info.Digest, len(b))
		}
		sizes[info.Digest] = info.Size
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	index, err := badgermeta.Open(filepath.Join(dir, "meta"), zap.NewNop(), badgermeta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer index.Close()
	index.EachManifest(context.Background(), "", func(l meta.ManifestLink) error {
		if size, ok := sizes[l.Digest]; !ok || size != l.Size {
			t.Errorf("manifest %s@%s: stored %v (%d bytes), record %d bytes", l.Repo, l.Digest, ok, size, l.Size)
		}
		return nil
	})
	index.EachBlob(context.Background(), "", func(l meta.BlobLink) error {
		if size, ok := sizes[l.Digest]; !ok || (l.Size > 0 && size != l.Size) {
			t.Errorf("blob %s@%s: stored %v (%d bytes), record %d bytes", l.Repo, l.Digest, ok, size, l.Size)
		}
		return nil
	})
	index.EachTag(context.Background(), "", func(tl meta.TagLink) error {
		if _, err := index.Manifest(context.Background(), tl.Repo, tl.Digest); err != nil {
			t.Errorf("tag %s:%s points at %s: %v", tl.Repo, tl.Name, tl.Digest, err)
		}
		return nil
	})
}
