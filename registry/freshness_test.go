package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// What HTTP clients get when the upstream fails: a stale tag as a 200
// with its digest; a cold miss as 503 UNAVAILABLE, or 429 TOOMANYREQUESTS
// with the upstream's Retry-After, never a 404 (containerd would fall back
// past the cache); a tag the upstream deleted as 404 MANIFEST_UNKNOWN.
// (When the engine revalidates and serves stale is cache/engine's
// TestTagTTLAndRevalidation and TestStaleServedWhenUpstreamFails.)
func TestUpstreamFailureAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		fault  upstreamtest.Fault
		status int
		code   string
	}{
		{"503", upstreamtest.Fault{Status: 503}, 503, "UNAVAILABLE"},
		{"500", upstreamtest.Fault{Status: 500}, 503, "UNAVAILABLE"},
		{"429", upstreamtest.Fault{Status: 429, RetryAfter: 1}, 429, "TOOMANYREQUESTS"},
		{"dropped", upstreamtest.Fault{Drop: true}, 503, "UNAVAILABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpt{rules: alwaysStale()})
			img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
			d, _ := img.Digest()
			path := "/v2/" + repo + "/manifests/3.10"
			e.do("GET", path)
			e.up.AddFault(tc.fault)
			resp, _ := e.do("GET", path)
			if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != d.String() {
				t.Fatalf("stale copy not served: %d", resp.StatusCode)
			}
			resp, body := e.do("GET", "/v2/"+repo+"/manifests/3.9")
			if resp.StatusCode != tc.status || errorCode(body) != tc.code {
				t.Fatalf("cold miss with upstream down: %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if tc.status == 429 && resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("throttled miss: Retry-After %q, want 1", resp.Header.Get("Retry-After"))
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
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
	})
	t.Run("deleted upstream", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpt{rules: alwaysStale()})
		e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
		path := "/v2/" + repo + "/manifests/3.10"
		e.do("GET", path)
		e.up.AddFault(upstreamtest.Fault{PathContains: "/manifests/3.10", Status: 404})
		if resp, body := e.do("GET", path); resp.StatusCode != 404 || errorCode(body) != "MANIFEST_UNKNOWN" {
			t.Fatalf("tag deleted upstream: %d %s", resp.StatusCode, body)
		}
	})
}

// alwaysStale is the AKS rule with a tag TTL so short that every tag
// request after the first revalidates.
func alwaysStale() []rules.Rule {
	r := aksRule()
	r.TagTTL = units.Duration(time.Nanosecond)
	return []rules.Rule{r}
}
