package evict_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/evict"
)

// Eviction runs while clients pull: every pull completes with the right
// bytes (evicted content is filled again), and a response already reading
// a blob file finishes after the file was deleted.
func TestEvictionWhileServing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, evict.Policy{MaxBytes: 2 << 20}) // room for big, at first
	names := []string{"a", "b", "c", "d", "e", "f"}
	for _, n := range names {
		e.up.PushImage(t, "oss/"+n+":1", layerSize, 2)
	}
	big := e.up.PushImage(t, "oss/big:1", 1<<20, 1)
	if err := e.pull(prefix+"oss/big", "1"); err != nil {
		t.Fatal(err)
	}
	if err := e.col.SetPolicy(evict.Policy{MaxBytes: 150_000}); err != nil {
		t.Fatal(err)
	}
	layers, _ := big.Layers()
	ld, _ := layers[0].Digest()

	// Start reading the big layer, stop half way.
	resp, err := httpClient.Get(e.srv.URL + "/v2/" + prefix + "oss/big/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(resp.Body, 1)
	if _, err := io.CopyN(h, br, 1<<19); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for ctx.Err() == nil {
				n := names[r.IntN(len(names))]
				if err := e.pull(prefix+"oss/"+n, "1"); err != nil {
					errs <- fmt.Errorf("pull %s: %w", n, err)
					return
				}
			}
		}()
	}
	runs := 0
	for ctx.Err() == nil {
		if _, err := e.col.Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
		runs++
		e.clock.Advance(time.Second)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if e.hasTag(prefix+"oss/big", "1") {
		t.Fatal("the big image should have been evicted")
	}
	if _, err := io.Copy(h, br); err != nil {
		t.Fatalf("reading a deleted blob's open file: %v", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != ld.String() {
		t.Fatalf("blob read across its eviction: digest %s", got)
	}
	t.Logf("%d collections while serving", runs)
	if _, err := e.col.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.consistent()
}
