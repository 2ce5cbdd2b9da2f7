package engine_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/airlock/airlock/internal/units"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// Within the tag TTL nothing goes upstream; after it one HEAD, and a GET
// only if the digest moved; digests never go upstream again. The engine
// runs on its real clock, in a synctest bubble.
func TestTagTTLAndRevalidation(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		r := aksRule()
		r.TagTTL = units.Duration(time.Minute)
		f := upstreamtest.NewFake()
		e := newEnv(t, s, envOpt{fake: f, rules: []rules.Rule{r}})
		img := f.PutImage(upRepo, "3.10", 64, "one")
		ctx := context.Background()
		get := func(head bool) *cache.Manifest {
			t.Helper()
			m, err := e.eng.Manifest(ctx, repo, "3.10", head)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}

		if m := get(false); !m.FromUpstream || m.Digest != img.Digest || f.Count("manifest GET") != 1 {
			t.Fatalf("first pull: %+v, GETs %d", m, f.Count("manifest GET"))
		}
		f.Reset()
		time.Sleep(59 * time.Second)
		for range 3 {
			get(false)
			get(true)
		}
		if n := f.Total(); n != 0 {
			t.Fatalf("within the TTL: %d upstream requests, want 0", n)
		}

		// After the TTL: one HEAD; same digest, so no GET.
		time.Sleep(2 * time.Second)
		if m := get(true); m.Digest != img.Digest || m.FromUpstream {
			t.Fatalf("revalidated tag: %+v (want %s, not from upstream; HEAD %d GET %d)", m, img.Digest, f.Count("manifest HEAD"), f.Count("manifest GET"))
		}
		if h, g := f.Count("manifest HEAD"), f.Count("manifest GET"); h != 1 || g != 0 {
			t.Fatalf("after TTL: %d HEAD, %d GET; want 1, 0", h, g)
		}
		// The revalidation refreshed the tag: quiet again for a TTL.
		f.Reset()
		get(false)
		if f.Total() != 0 {
			t.Fatalf("revalidation did not refresh the tag")
		}

		// The tag moves upstream: after the TTL, one HEAD and one GET.
		img2 := f.PutImage(upRepo, "3.10", 64, "two")
		time.Sleep(time.Minute)
		if m := get(false); m.Digest != img2.Digest || !bytes.Equal(m.Body, img2.Manifest) || !m.FromUpstream {
			t.Fatalf("moved tag not picked up: %s (want %s), from upstream %v", m.Digest, img2.Digest, m.FromUpstream)
		}
		if h, g := f.Count("manifest HEAD"), f.Count("manifest GET"); h != 1 || g != 1 {
			t.Fatalf("moved tag: %d HEAD, %d GET; want 1, 1", h, g)
		}
		// Digest references never go upstream again, however old.
		f.Reset()
		time.Sleep(1000 * time.Hour)
		for _, d := range []digest.Digest{img.Digest, img2.Digest} {
			if _, err := e.eng.Manifest(ctx, repo, d.String(), false); err != nil {
				t.Fatalf("old digest %s: %v", d, err)
			}
		}
		if f.Total() != 0 {
			t.Fatalf("digest references went upstream: %d", f.Total())
		}
	})
}

// A stale tag is served when the upstream fails; a cold miss then is
// "unavailable" or "too many requests" (with the upstream's Retry-After),
// never "unknown": containerd would fall back past the cache.
func TestStaleServedWhenUpstreamFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault upstreamtest.Fault
	}{
		{"503", upstreamtest.Fault{Status: 503}},
		{"500", upstreamtest.Fault{Status: 500}},
		{"429", upstreamtest.Fault{Status: 429, RetryAfter: 1}},
		{"dropped", upstreamtest.Fault{Drop: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachBackend(t, func(t *testing.T, s stores) {
				e := newEnv(t, s, envOpt{rules: alwaysStale()})
				img := e.up.PushImage(t, upRepo+":3.10", 64, 1)
				d, _ := img.Digest()
				ctx := context.Background()
				if _, err := e.eng.Manifest(ctx, repo, "3.10", false); err != nil {
					t.Fatal(err)
				}
				e.up.AddFault(tc.fault)
				m, err := e.eng.Manifest(ctx, repo, "3.10", false)
				if err != nil || m.Digest.String() != d.String() {
					t.Fatalf("stale copy not served: %v", err)
				}
				if got := e.metric("airlock_cache_stale_serves_total", "rule", "aks-managed-mcr"); got != 1 {
					t.Fatalf("stale serves metric %v, want 1", got)
				}
				_, err = e.eng.Manifest(ctx, repo, "3.9", false)
				var ue *cache.UpstreamError
				if errors.Is(err, cache.ErrManifestUnknown) || !errors.As(err, &ue) {
					t.Fatalf("cold miss with the upstream failing: %v, want an upstream error", err)
				}
				if tc.fault.Status == 429 && (!errors.Is(err, cache.ErrTooManyRequests) || ue.RetryAfter != time.Second) {
					t.Fatalf("throttled miss: %v, retry after %v", err, ue.RetryAfter)
				}
				if tc.fault.Status != 429 && !errors.Is(err, cache.ErrUnavailable) {
					t.Fatalf("miss with upstream down: %v", err)
				}
			})
		})
	}
}

// A cold miss with the upstream unreachable is "unavailable".
func TestUpstreamUnreachable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{endpoint: "http://" + upstreamtest.Unreachable(t)})
		if _, err := e.eng.Manifest(context.Background(), repo, "3.10", false); !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("cold manifest miss, upstream unreachable: %v", err)
		}
		d := digest.Digest("sha256:" + strings.Repeat("c", 64))
		if _, err := e.eng.Blob(context.Background(), repo, d, false); !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("cold blob miss, upstream unreachable: %v", err)
		}
	})
}

// The upstream is authoritative for its tags: one it no longer has is
// unknown after the TTL, not served stale, and no longer listed (neither
// the upstream's listing nor the local tags have it).
func TestUpstream404TagAfterTTL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		e := newEnv(t, s, envOpt{rules: alwaysStale()})
		e.up.PushImage(t, upRepo+":3.10", 64, 1)
		ctx := context.Background()
		if _, err := e.eng.Manifest(ctx, repo, "3.10", false); err != nil {
			t.Fatal(err)
		}
		e.deleteTag(upRepo + ":3.10")
		if _, err := e.eng.Manifest(ctx, repo, "3.10", false); !errors.Is(err, cache.ErrManifestUnknown) {
			t.Fatalf("tag deleted upstream: %v", err)
		}
		if tags, _, err := e.eng.Tags(ctx, repo, "", 0); err != nil || len(tags) != 0 {
			t.Fatalf("a tag deleted upstream is still listed: %v %v", tags, err)
		}
	})
}

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
