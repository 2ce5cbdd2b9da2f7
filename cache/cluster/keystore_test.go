package cluster

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

func TestMemKeysCreateOnce(t *testing.T) {
	t.Parallel()
	var ks MemKeys
	var gens atomic.Int64
	var wg sync.WaitGroup
	got := make(chan []byte, 8)
	for i := range 8 {
		wg.Go(func() {
			b, err := ks.Secret(context.Background(), "k", func() ([]byte, error) {
				gens.Add(1)
				return []byte{byte(i)}, nil
			})
			if err != nil {
				t.Error(err)
			}
			got <- b
		})
	}
	wg.Wait()
	close(got)
	first := <-got
	for b := range got {
		if !bytes.Equal(b, first) {
			t.Fatalf("LoadOrCreate returned %v and %v", first, b)
		}
	}
	if gens.Load() != 1 {
		t.Fatalf("gen called %d times", gens.Load())
	}
	first[0] ^= 0xff // the caller's copy
	if b, _ := ks.Secret(context.Background(), "k", nil); b[0] == first[0] {
		t.Fatal("a caller changed the stored record")
	}
}

func TestLoadPeerKey(t *testing.T) {
	t.Parallel()
	var ks MemKeys
	c1, err := LoadPeerKey(context.Background(), &ks)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := LoadPeerKey(context.Background(), &ks)
	if err != nil || !bytes.Equal(*c1.key.Load(), *c2.key.Load()) || bytes.Equal(*c1.key.Load(), make([]byte, KeySize)) {
		t.Fatalf("second load: %v", err)
	}
	var other MemKeys
	c3, _ := LoadPeerKey(context.Background(), &other)
	if bytes.Equal(*c1.key.Load(), *c3.key.Load()) {
		t.Fatal("two clusters made the same key")
	}
	bad := &MemKeys{m: map[string][]byte{PeerKeyName: []byte("short")}}
	if _, err := LoadPeerKey(context.Background(), bad); err == nil {
		t.Fatal("a short stored key was accepted")
	}
}
