package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseManifest(t *testing.T) {
	t.Parallel()
	d := "sha256:" + strings.Repeat("a", 64)
	p, err := parseManifest([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+d+`","size":1},
		"layers":[{"digest":"`+d+`","size":1}],"subject":{"digest":"`+d+`","size":1}}`), "")
	if err != nil || len(p.Blobs) != 2 || p.Subject.String() != d || p.ArtifactType != "application/vnd.oci.image.config.v1+json" {
		t.Fatalf("parsed %+v %v", p, err)
	}
	for _, bad := range []string{`not json`, `{"layers":[{"digest":"sha256:short"}]}`, `{"manifests":[{"digest":"md5:x"}]}`} {
		if _, err := parseManifest([]byte(bad), ""); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestFlightGroup(t *testing.T) {
	t.Parallel()
	var g flightGroup
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	shared := atomic.Int32{}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, s, err := g.do(context.Background(), "k", func() (any, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if err != nil || v.(int) != 42 {
				t.Errorf("got %v %v", v, err)
			}
			if s {
				shared.Add(1)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	// A caller that gives up gets its context's error; the call goes on.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := g.do(ctx, "k", func() (any, error) { return nil, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(release)
	wg.Wait()
	if calls.Load() != 1 || shared.Load() != 9 {
		t.Fatalf("calls %d shared %d, want 1 and 9", calls.Load(), shared.Load())
	}
}
