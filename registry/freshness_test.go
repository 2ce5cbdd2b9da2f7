package registry_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

func TestTagTTLAndRevalidation(t *testing.T) {
	t.Parallel()
	r := aksRule()
	r.TagTTL = units.Duration(time.Minute)
	e := newEnv(t, envOpt{rules: []rules.Rule{r}})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	d1, _ := img.Digest()
	path := "/v2/" + repo + "/manifests/3.10"

	resp, _ := e.do("GET", path)
	if resp.StatusCode != 200 || e.up.Count("GET", "/manifests/3.10") != 1 {
		t.Fatalf("first pull: %d, GETs %d", resp.StatusCode, e.up.Count("GET", "/manifests/3.10"))
	}
	e.up.Reset()
	e.clock.Advance(59 * time.Second)
	for range 3 {
		e.do("GET", path)
		e.do("HEAD", path)
	}
	if n := e.up.Total(); n != 0 {
		t.Fatalf("within the TTL: %d upstream requests, want 0", n)
	}

	// After the TTL: one HEAD; same digest, so no GET.
	e.clock.Advance(2 * time.Second)
	resp, _ = e.do("HEAD", path)
	if resp.Header.Get("Docker-Content-Digest") != d1.String() || resp.Header.Get("X-Azure-Origin") != "" {
		t.Fatalf("revalidated tag: %v (want %s; HEAD %d GET %d)", resp.Header, d1, e.up.Count("HEAD", "/manifests/"), e.up.Count("GET", "/manifests/"))
	}
	if h, g := e.up.Count("HEAD", "/manifests/3.10"), e.up.Count("GET", "/manifests/"); h != 1 || g != 0 {
		t.Fatalf("after TTL: %d HEAD, %d GET; want 1, 0", h, g)
	}
	// The revalidation refreshed the tag: quiet again for a TTL.
	e.up.Reset()
	e.do("GET", path)
	if e.up.Total() != 0 {
		t.Fatalf("revalidation did not refresh the tag")
	}

	// The tag moves upstream: after the TTL, one HEAD and one GET.
	img2 := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	d2, _ := img2.Digest()
	raw2, _ := img2.RawManifest()
	e.clock.Advance(time.Minute)
	resp, body := e.do("GET", path)
	if resp.Header.Get("Docker-Content-Digest") != d2.String() || !bytes.Equal(body, raw2) || resp.Header.Get("X-Azure-Origin") != "upstream" {
		t.Fatalf("moved tag not picked up: %v", resp.Header)
	}
	if h, g := e.up.Count("HEAD", "/manifests/3.10"), e.up.Count("GET", "/manifests/3.10"); h != 1 || g != 1 {
		t.Fatalf("moved tag: %d HEAD, %d GET; want 1, 1", h, g)
	}
	// Digest references never go upstream again, however old.
	e.up.Reset()
	e.clock.Advance(1000 * time.Hour)
	for _, d := range []string{d1.String(), d2.String()} {
		if resp, _ := e.do("GET", "/v2/"+repo+"/manifests/"+d); resp.StatusCode != 200 {
			t.Fatalf("old digest %s: %d", d, resp.StatusCode)
		}
	}
	if e.up.Total() != 0 {
		t.Fatalf("digest references went upstream: %d", e.up.Total())
	}
}

func TestStaleServedWhenUpstreamFails(t *testing.T) {
	t.Parallel()
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
			e := newEnv(t, envOpt{})
			img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
			d, _ := img.Digest()
			path := "/v2/" + repo + "/manifests/3.10"
			e.do("GET", path)
			e.up.AddFault(tc.fault)
			e.clock.Advance(10 * time.Minute)
			resp, _ := e.do("GET", path)
			if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != d.String() {
				t.Fatalf("stale copy not served: %d", resp.StatusCode)
			}
			if got := e.metric("airlock_cache_stale_serves_total", "rule", "aks-managed-mcr"); got != 1 {
				t.Fatalf("stale serves metric %v, want 1", got)
			}
			// A cold miss with the upstream failing is a 5xx (or 429),
			// never a 404: containerd would fall back past the cache.
			resp, body := e.do("GET", "/v2/"+repo+"/manifests/3.9")
			if resp.StatusCode < 429 || resp.StatusCode == 404 {
				t.Fatalf("cold miss with upstream down: %d %s", resp.StatusCode, body)
			}
			if tc.fault.Status == 429 && (resp.StatusCode != 429 || errorCode(body) != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") != "1") {
				t.Fatalf("throttled miss: %d %s %v", resp.StatusCode, body, resp.Header)
			}
			if tc.fault.Status != 429 && (resp.StatusCode != 503 || errorCode(body) != "UNAVAILABLE") {
				t.Fatalf("miss with upstream down: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{endpoint: "http://" + upstreamtest.Unreachable(t)})
	resp, body := e.do("GET", "/v2/"+repo+"/manifests/3.10")
	if resp.StatusCode != 503 || errorCode(body) != "UNAVAILABLE" {
		t.Fatalf("cold miss, upstream unreachable: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("GET", "/v2/"+repo+"/blobs/sha256:"+strings.Repeat("c", 64))
	if resp.StatusCode != 503 {
		t.Fatalf("cold blob miss, upstream unreachable: %d %s", resp.StatusCode, body)
	}
}

func TestUpstream404TagAfterTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	path := "/v2/" + repo + "/manifests/3.10"
	e.do("GET", path)
	e.up.AddFault(upstreamtest.Fault{PathContains: "/manifests/3.10", Status: 404})
	e.clock.Advance(time.Hour)
	if resp, body := e.do("GET", path); resp.StatusCode != 404 || errorCode(body) != "MANIFEST_UNKNOWN" {
		t.Fatalf("tag deleted upstream: %d %s", resp.StatusCode, body)
	}
}
