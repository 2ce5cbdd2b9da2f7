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
	opts := testOptions(t.TempDir())
	opts.Replicas = 3
	l := startServe(t, opts)
	l.waitReady(60 * time.Second)
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
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
	st, err := mar.FetchStats(t.Context(), l.mar.URL())
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
	l.stop()
}

func keys(m map[string]bool, prefix string) []string {
	var out []string
	for k := range m {
		out = append(out, prefix+k)
	}
	return out
}
