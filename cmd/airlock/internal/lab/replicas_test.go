package lab

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"go.uber.org/zap/zapcore"
)

// airlock lab --replicas 3: three replicas on Azurite, one cluster. An
// image pulled through all three at once is fetched from the emulator
// once per blob, and every replica serves it.
func TestLabReplicas(t *testing.T) {
	t.Parallel()
	if _, err := FindAzurite(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := Start(ctx, Options{
		Dir: t.TempDir(), Listen: "127.0.0.1:0", MarListen: "127.0.0.1:0",
		Scale: catalog.ScaleSmall, Seed: 1, LogLevel: zapcore.ErrorLevel, Replicas: 3,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx) }()
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	select {
	case <-l.srv.Ready():
	case <-rctx.Done():
		t.Fatal("replica 1 never became ready")
	}
	if err := l.reps.ready(rctx); err != nil {
		t.Fatalf("replicas 2 and 3: %v", err)
	}
	if len(l.reps.addrs) != 3 {
		t.Fatalf("replicas %v", l.reps.addrs)
	}

	var pause catalog.Image
	for _, img := range l.mar.Catalog().Images() {
		if img.Repo == "oss/kubernetes/pause" && img.Tag == "3.10" {
			pause = img
		}
	}
	blobs := map[string]bool{}
	for _, p := range pause.Platforms {
		for _, d := range append(p.Layers, p.Config) {
			blobs[d.Digest.String()] = true
		}
	}
	var wg sync.WaitGroup
	for _, addr := range l.reps.addrs {
		wg.Go(func() {
			base := "http://" + addr + "/v2/aks-managed-repository/oss/kubernetes/pause/"
			for _, path := range append([]string{"manifests/3.10"}, keys(blobs, "blobs/")...) {
				resp, err := http.Get(base + path)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s %s: %d", addr, path, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	st, err := mar.FetchStats(ctx, l.mar.URL())
	if err != nil {
		t.Fatal(err)
	}
	for d := range blobs {
		if n := st.Fetches(d); n != 1 {
			t.Errorf("blob %s fetched %d times through 3 replicas, want 1", d, n)
		}
	}
	// Every replica provisioned the lab's cluster: its images are pinned
	// once, under its name, in the store they share.
	resp, err := http.Get("http://" + l.reps.addrs[2] + "/admin/pins")
	if err != nil {
		t.Fatal(err)
	}
	var pins struct{ Pins []struct{ Ref, Owner string } }
	json.NewDecoder(resp.Body).Decode(&pins)
	resp.Body.Close()
	found := false
	for _, p := range pins.Pins {
		found = found || p.Ref == "aks-managed-repository/oss/kubernetes/pause:3.10" && p.Owner == "cluster/lab"
	}
	if !found {
		t.Errorf("pins %+v lack the lab's pause image", pins.Pins)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("lab shutdown: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lab did not stop")
	}
}

func keys(m map[string]bool, prefix string) []string {
	var out []string
	for k := range m {
		out = append(out, prefix+k)
	}
	return out
}
