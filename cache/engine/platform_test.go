package engine_test

import (
	"bytes"
	"context"
	"testing"
)

// Pulling a multi-platform index caches only the platform asked for; the
// other is fetched when asked for; cached digests never go upstream again.
func TestIndexCachesOnlyRequestedPlatform(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{})
		idx := e.up.PushIndex(t, "oss/kubernetes/kube-proxy:v1.31.3", 256)
		im, _ := idx.IndexManifest()
		raw, _ := idx.RawManifest()
		const local = "aks-managed-repository/oss/kubernetes/kube-proxy"
		ctx := context.Background()
		m, err := e.eng.Manifest(ctx, local, "v1.31.3", false)
		if err != nil || !bytes.Equal(m.Body, raw) {
			t.Fatalf("index not byte-identical: %v", err)
		}
		amd, arm := im.Manifests[0].Digest.String(), im.Manifests[1].Digest.String()
		if _, err := e.eng.Manifest(ctx, local, amd, false); err != nil {
			t.Fatalf("child: %v", err)
		}
		if n := e.up.Count("GET", "/manifests/"+arm); n != 0 {
			t.Fatalf("the other platform was fetched")
		}
		e.up.Reset()
		if _, err := e.eng.Manifest(ctx, local, amd, false); err != nil || e.up.Total() != 0 {
			t.Fatalf("cached digest went upstream: %v, %d requests", err, e.up.Total())
		}
		if _, err := e.eng.Manifest(ctx, local, arm, false); err != nil {
			t.Fatal(err)
		}
		if n := e.up.Count("GET", "/manifests/"+arm); n != 1 {
			t.Fatalf("other platform fetched %d times, want 1", n)
		}
	})
}
