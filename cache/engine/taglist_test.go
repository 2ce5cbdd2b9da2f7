package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tags lists every tag of the test repository.
func tags(t *testing.T, e *Engine, last string, n int) ([]string, bool) {
	t.Helper()
	got, more, err := e.Tags(context.Background(), testLocal, last, n)
	if err != nil {
		t.Fatalf("Tags(last %q, n %d): %v", last, n, err)
	}
	return got, more
}

// Under a rule, tags/list is the union of the upstream's tags (every page
// of them) and the local ones, sorted and paged over the union; the
// upstream is listed once per tag TTL.
func TestTagListUnion(t *testing.T) {
	t.Parallel()
	e, up, clock := newTestEngineClock(t)
	for _, tag := range []string{"1.0", "2.0", "latest", "old"} {
		up.PushImage(t, testUp+":"+tag, 100, 1)
	}
	// "old" is cached here, then deleted upstream: it stays listed.
	if _, err := e.Manifest(context.Background(), testLocal, "old", true); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(up.Ref(t, testUp+":old"), up.Setup()); err != nil {
		t.Fatal(err)
	}
	up.PushImage(t, testUp+":3.0", 100, 1)
	up.PageTags(2) // the upstream paginates: 4 tags, 2 pages
	up.Reset()

	if got, more := tags(t, e, "", 0); !slices.Equal(got, []string{"1.0", "2.0", "3.0", "latest", "old"}) || more {
		t.Fatalf("all tags: %v (more %v)", got, more)
	}
	if got, more := tags(t, e, "", 2); !slices.Equal(got, []string{"1.0", "2.0"}) || !more {
		t.Fatalf("page 1: %v (more %v)", got, more)
	}
	if got, more := tags(t, e, "2.0", 2); !slices.Equal(got, []string{"3.0", "latest"}) || !more {
		t.Fatalf("page 2: %v (more %v)", got, more)
	}
	if got, more := tags(t, e, "latest", 2); !slices.Equal(got, []string{"old"}) || more {
		t.Fatalf("page 3: %v (more %v)", got, more)
	}
	if got, more := tags(t, e, "zzz", 2); len(got) != 0 || more {
		t.Fatalf("after the end: %v (more %v)", got, more)
	}
	if n := up.Count("GET", "/tags/list"); n != 2 {
		t.Fatalf("four listings within the TTL made %d upstream page requests, want the 2 of one listing", n)
	}

	// Past the TTL the upstream is listed again.
	up.PushImage(t, testUp+":4.0", 100, 1)
	clock.Advance(rules.DefaultTagTTL)
	if got, _ := tags(t, e, "3.0", 1); !slices.Equal(got, []string{"4.0"}) {
		t.Fatalf("after the TTL: %v, want the new upstream tag", got)
	}
	if n := up.Count("GET", "/tags/list"); n != 5 {
		t.Fatalf("upstream page requests %d, want 5 (two listings)", n)
	}
}

// However many ask at once, one upstream listing is made.
func TestTagListSingleFlight(t *testing.T) {
	t.Parallel()
	e, up := newTestEngine(t)
	up.PushImage(t, testUp+":1", 100, 1)
	up.AddFault(upstreamtest.Fault{Method: "GET", PathContains: "/tags/list", Delay: 200 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, _, err := e.Tags(context.Background(), testLocal, "", 0); err != nil || !slices.Equal(got, []string{"1"}) {
				t.Errorf("Tags: %v %v", got, err)
			}
		}()
	}
	wg.Wait()
	if n := up.Count("GET", "/tags/list"); n != 1 {
		t.Fatalf("50 concurrent listings made %d upstream listings, want 1", n)
	}
}

// When the upstream fails: a listing fetched before is served stale; with
// none, the local tags; with none of those either, the upstream's error
// (503 or 429), never "unknown". A repository the upstream does not know
// is unknown unless it has local tags.
func TestTagListUpstreamFailures(t *testing.T) {
	t.Parallel()
	e, up, clock := newTestEngineClock(t)
	up.PushImage(t, testUp+":1", 100, 1)
	up.PushImage(t, testUp+":2", 100, 1)
	ctx := context.Background()

	// Nothing cached, nothing local.
	up.AddFault(upstreamtest.Fault{PathContains: "/tags/list", Status: 503, Times: 3})
	if _, _, err := e.Tags(ctx, testLocal, "", 0); !errors.Is(err, cache.ErrUnavailable) || errors.Is(err, cache.ErrNameUnknown) {
		t.Fatalf("cold listing, upstream down: %v, want ErrUnavailable", err)
	}
	up.ClearFaults()
	up.AddFault(upstreamtest.Fault{PathContains: "/tags/list", Status: 429, RetryAfter: 7, Times: 3})
	_, _, err := e.Tags(ctx, testLocal, "", 0)
	var ue *cache.UpstreamError
	if !errors.Is(err, cache.ErrTooManyRequests) || !errors.As(err, &ue) || ue.RetryAfter != 7*time.Second {
		t.Fatalf("cold listing, upstream throttling: %v, want ErrTooManyRequests after 7s", err)
	}
	up.ClearFaults()

	// Nothing cached, local tags: those.
	if _, err := e.Manifest(ctx, testLocal, "1", true); err != nil {
		t.Fatal(err)
	}
	up.AddFault(upstreamtest.Fault{PathContains: "/tags/list", Status: 503, Times: 3})
	if got, _ := tags(t, e, "", 0); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("cold listing with a local tag, upstream down: %v", got)
	}
	up.ClearFaults()

	// A listing fetched before: served stale past its TTL.
	if got, _ := tags(t, e, "", 0); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("listing: %v", got)
	}
	clock.Advance(rules.DefaultTagTTL)
	up.AddFault(upstreamtest.Fault{Status: 503})
	if got, _ := tags(t, e, "", 0); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("stale listing, upstream down: %v", got)
	}
	if v := counterValue(t, e.m.stale.WithLabelValues("aks-managed-mcr")); v != 1 {
		t.Fatalf("stale serves metric %v, want 1", v)
	}
	up.ClearFaults()

	// Unknown upstream: unknown here too, unless tags are held here.
	if _, _, err := e.Tags(ctx, "aks-managed-repository/oss/none", "", 0); !errors.Is(err, cache.ErrNameUnknown) {
		t.Fatalf("repository unknown upstream and here: %v", err)
	}
	if err := remote.Delete(up.Ref(t, testUp+":2"), up.Setup()); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(up.Ref(t, testUp+":1"), up.Setup()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(rules.DefaultTagTTL)
	if got, _ := tags(t, e, "", 0); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("repository gone upstream, a tag held here: %v", got)
	}
}

// tagList: local keeps ACR's listing exactly: the local tags, no upstream
// request; a repository with none is unknown.
func TestTagListLocal(t *testing.T) {
	t.Parallel()
	r := rules.Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*", TagList: rules.TagListLocal}
	e, up := newTestEngine(t, r)
	up.PushImage(t, testUp+":1", 100, 1)
	up.PushImage(t, testUp+":2", 100, 1)
	ctx := context.Background()
	if _, _, err := e.Tags(ctx, testLocal, "", 0); !errors.Is(err, cache.ErrNameUnknown) {
		t.Fatalf("nothing pulled: %v, want ErrNameUnknown", err)
	}
	if _, err := e.Manifest(ctx, testLocal, "2", true); err != nil {
		t.Fatal(err)
	}
	up.Reset()
	if got, _ := tags(t, e, "", 0); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("local listing: %v", got)
	}
	if n := up.Total(); n != 0 {
		t.Fatalf("a local listing made %d upstream requests", n)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
