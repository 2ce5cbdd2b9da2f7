package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The lab end to end: every image of the emulated catalog, every platform,
// every blob, pulled through airlock by several clients at once; every
// digest verifies and the emulator saw exactly one fetch per blob.
func TestLabPullsWholeCatalogOnce(t *testing.T) {
	t.Parallel()
	l := startServe(t, testOptions(t.TempDir()))
	l.waitReady(30 * time.Second)
	base := "http://" + l.srv.Addr() + "/v2/aks-managed-repository/"
	client := &http.Client{Timeout: 30 * time.Second}

	get := func(path, wantDigest string) ([]byte, error) {
		resp, err := client.Get(base + path + "?ns=mcr.microsoft.com")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s: status %d: %s", path, resp.StatusCode, b)
		}
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != wantDigest {
			return nil, fmt.Errorf("%s: digest %s, want %s", path, got, wantDigest)
		}
		return b, nil
	}

	images := l.mar.Catalog().Images()
	blobs := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(images))
	sem := make(chan struct{}, 8)
	for _, img := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := get(img.Repo+"/manifests/"+img.Tag, img.Digest.String()); err != nil {
				errs <- err
				return
			}
			for _, p := range img.Platforms {
				if _, err := get(img.Repo+"/manifests/"+p.Digest.String(), p.Digest.String()); err != nil {
					errs <- err
					return
				}
				for _, d := range append(p.Layers, p.Config) {
					if _, err := get(img.Repo+"/blobs/"+d.Digest.String(), d.Digest.String()); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					blobs[d.Digest.String()] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The lab's cluster pulls from this registry: its bootstrap images are
	// pinned against eviction, under the cluster's name.
	resp, err := client.Get("http://" + l.srv.Addr() + "/admin/pins")
	if err != nil {
		t.Fatal(err)
	}
	pins, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"ref":"aks-managed-repository/oss/kubernetes/pause:3.10"`, `"owner":"cluster/lab"`} {
		if !strings.Contains(string(pins), want) {
			t.Errorf("pins lack %s: %s", want, pins)
		}
	}
	st, err := mar.FetchStats(t.Context(), l.mar.URL())
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) < 50 {
		t.Fatalf("only %d distinct blobs pulled", len(blobs))
	}
	for d := range blobs {
		if n := st.Fetches(d); n != 1 {
			t.Errorf("blob %s fetched from the emulator %d times, want 1", d, n)
		}
	}
	l.stop()
}

// The README's `make run` uses the default ./data: a relative directory is
// resolved where the user typed it, the lab starts, and a second start on
// the same directory finds its state.
func TestLabRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	for round := range 2 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			l := startServe(t, testOptions("./data"))
			if !strings.HasPrefix(l.certsDir(), "/") || !strings.Contains(l.hosts, "aks-managed-repository") {
				t.Errorf("certs dir %q, hosts.toml %q", l.certsDir(), l.hosts)
			}
			l.waitReady(30 * time.Second)
			l.stop()
		})
	}
}

// testOptions are the options the tests start a lab on dir with: free
// ports, the small catalog, errors logged only.
func testOptions(dir string) Options {
	return Options{Dir: dir, Listen: "127.0.0.1:0", MarListen: "127.0.0.1:0", Scale: catalog.ScaleSmall, Seed: 1, LogLevel: zapcore.ErrorLevel}
}

// serving is a lab serving until its test ends or stop is called.
type serving struct {
	*Lab
	t      *testing.T
	cancel context.CancelFunc
	served chan error
}

// startServe starts a lab with opts and serves it.
func startServe(t *testing.T, opts Options) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Start(ctx, opts, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &serving{Lab: l, t: t, cancel: cancel, served: make(chan error, 1)}
	go func() { s.served <- l.Serve(ctx) }()
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			s.stop()
		}
	})
	return s
}

// waitReady waits up to timeout until the lab's airlock is ready.
func (s *serving) waitReady(timeout time.Duration) {
	s.t.Helper()
	select {
	case <-s.srv.Ready():
	case err := <-s.served:
		s.t.Fatalf("lab stopped: %v", err)
	case <-time.After(timeout):
		s.t.Fatal("lab never became ready")
	}
}

// stop stops the lab, which must end cleanly within a minute.
func (s *serving) stop() {
	s.t.Helper()
	s.cancel()
	select {
	case err := <-s.served:
		if err != nil {
			s.t.Errorf("lab shutdown: %v", err)
		}
	case <-time.After(time.Minute):
		s.t.Error("lab did not stop")
	}
}

// hasCluster opens a stopped lab's control state and reports whether its
// cluster exists.
func hasCluster(t *testing.T, dir string) bool {
	t.Helper()
	cfg, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.Dir = filepath.Join(dir, "airlock")
	c, closeState, err := server.OpenLocal(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeState()
	err = c.Do(context.Background(), http.MethodGet, "/clusters/"+labCluster, nil, nil, nil)
	if err != nil && !errors.Is(err, deploy.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// A start that fails after it created the lab's cluster (here: its node
// configuration cannot be written) deletes the cluster: nothing is left
// half-made, and the next start creates it afresh. A failed start does not
// delete a cluster an earlier start made.
func TestLabFailedStartDeletesCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "node") // where the node configuration goes
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(dir)
	opts.LogLevel = zapcore.FatalLevel
	if _, err := Start(context.Background(), opts, io.Discard); err == nil {
		t.Fatal("the lab started without a place for its node configuration")
	}
	if hasCluster(t, dir) {
		t.Fatal("the failed start left the cluster it created")
	}

	os.Remove(blocker)
	startServe(t, testOptions(dir)).stop()
	if !hasCluster(t, dir) {
		t.Fatal("no cluster after a start")
	}
	if err := os.RemoveAll(filepath.Join(dir, "node")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), opts, io.Discard); err == nil {
		t.Fatal("the lab started without a place for its node configuration")
	}
	if !hasCluster(t, dir) {
		t.Fatal("a failed start deleted the cluster an earlier start made")
	}
}
