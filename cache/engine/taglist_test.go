package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// tags lists the test repository's tags.
func (e *env) tags(last string, n int) ([]string, bool) {
	e.t.Helper()
	got, more, err := e.eng.Tags(context.Background(), repo, last, n)
	if err != nil {
		e.t.Fatalf("Tags(last %q, n %d): %v", last, n, err)
	}
	return got, more
}

// deleteTag deletes repoTag on the test upstream.
func (e *env) deleteTag(repoTag string) {
	e.t.Helper()
	if err := remote.Delete(e.up.Ref(e.t, repoTag), e.up.Setup()); err != nil {
		e.t.Fatal(err)
	}
}

// Under a rule, tags/list is the union of the upstream's tags (every page
// of them) and the local ones, sorted and paged over the union; the
// upstream is listed once per tag TTL.
func TestTagListUnion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		clock := newClock()
		e := newEnv(t, s, envOpt{engine: []engine.Option{engine.WithClock(clock.Now)}})
		for _, tag := range []string{"1.0", "2.0", "latest", "old"} {
			e.up.PushImage(t, upRepo+":"+tag, 100, 1)
		}
		// "old" is cached here, then deleted upstream: it stays listed.
		if _, err := e.eng.Manifest(context.Background(), repo, "old", true); err != nil {
			t.Fatal(err)
		}
		e.deleteTag(upRepo + ":old")
		e.up.PushImage(t, upRepo+":3.0", 100, 1)
		e.up.PageTags(2) // the upstream paginates: 4 tags, 2 pages
		e.up.Reset()

		if got, more := e.tags("", 0); !slices.Equal(got, []string{"1.0", "2.0", "3.0", "latest", "old"}) || more {
			t.Fatalf("all tags: %v (more %v)", got, more)
		}
		if got, more := e.tags("", 2); !slices.Equal(got, []string{"1.0", "2.0"}) || !more {
			t.Fatalf("page 1: %v (more %v)", got, more)
		}
		if got, more := e.tags("2.0", 2); !slices.Equal(got, []string{"3.0", "latest"}) || !more {
			t.Fatalf("page 2: %v (more %v)", got, more)
		}
		if got, more := e.tags("latest", 2); !slices.Equal(got, []string{"old"}) || more {
			t.Fatalf("page 3: %v (more %v)", got, more)
		}
		if got, more := e.tags("zzz", 2); len(got) != 0 || more {
			t.Fatalf("after the end: %v (more %v)", got, more)
		}
		if n := e.up.Count("GET", "/tags/list"); n != 2 {
			t.Fatalf("four listings within the TTL made %d upstream page requests, want the 2 of one listing", n)
		}

		// Past the TTL the upstream is listed again.
		e.up.PushImage(t, upRepo+":4.0", 100, 1)
		clock.Advance(rules.DefaultTagTTL)
		if got, _ := e.tags("3.0", 1); !slices.Equal(got, []string{"4.0"}) {
			t.Fatalf("after the TTL: %v, want the new upstream tag", got)
		}
		if n := e.up.Count("GET", "/tags/list"); n != 5 {
			t.Fatalf("upstream page requests %d, want 5 (two listings)", n)
		}
	})
}

// However many ask at once, one upstream listing is made.
func TestTagListSingleFlight(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		f := upstreamtest.NewFake()
		f.PutImage(upRepo, "1", 100, "one")
		e := newEnv(t, s, envOpt{fake: f})
		release := f.Gate("tags GET")
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, _, err := e.eng.Tags(context.Background(), repo, "", 0); err != nil || !slices.Equal(got, []string{"1"}) {
					t.Errorf("Tags: %v %v", got, err)
				}
			}()
		}
		synctest.Wait() // one listing waits at the gate, the rest on it
		release()
		wg.Wait()
		if n := f.Count("tags GET"); n != 1 {
			t.Fatalf("50 concurrent listings made %d upstream listings, want 1", n)
		}
	})
}

// When the upstream fails: a listing fetched before is served stale; with
// none, the local tags; with none of those either, the upstream's error
// (503 or 429), never "unknown". A repository the upstream does not know
// is unknown unless it has local tags.
func TestTagListUpstreamFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		clock := newClock()
		e := newEnv(t, s, envOpt{engine: []engine.Option{engine.WithClock(clock.Now)}})
		e.up.PushImage(t, upRepo+":1", 100, 1)
		e.up.PushImage(t, upRepo+":2", 100, 1)
		ctx := context.Background()

		// Nothing cached, nothing local.
		e.up.AddFault(upstreamtest.Fault{PathContains: "/tags/list", Status: 503, Times: 3})
		if _, _, err := e.eng.Tags(ctx, repo, "", 0); !errors.Is(err, cache.ErrUnavailable) || errors.Is(err, cache.ErrNameUnknown) {
			t.Fatalf("cold listing, upstream down: %v, want ErrUnavailable", err)
		}
		e.up.ClearFaults()
		e.up.AddFault(upstreamtest.Fault{PathContains: "/tags/list", Status: 429, RetryAfter: 7, Times: 3})
		_, _, err := e.eng.Tags(ctx, repo, "", 0)
		var ue *cache.UpstreamError
		if !errors.Is(err, cache.ErrTooManyRequests) || !errors.As(err, &ue) || ue.RetryAfter != 7*time.Second {
			t.Fatalf("cold listing, upstream throttling: %v, want ErrTooManyRequests after 7s", err)
		}
		e.up.ClearFaults()

		// Nothing cached, local tags: those.
		if _, err := e.eng.Manifest(ctx, repo, "1", true); err != nil {
			t.Fatal(err)
		}
		e.up.AddFault(upstreamtest.Fault{PathContains: "/tags/list", Status: 503, Times: 3})
		if got, _ := e.tags("", 0); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("cold listing with a local tag, upstream down: %v", got)
		}
		e.up.ClearFaults()

		// A listing fetched before: served stale past its TTL.
		if got, _ := e.tags("", 0); !slices.Equal(got, []string{"1", "2"}) {
			t.Fatalf("listing: %v", got)
		}
		clock.Advance(rules.DefaultTagTTL)
		e.up.AddFault(upstreamtest.Fault{Status: 503})
		if got, _ := e.tags("", 0); !slices.Equal(got, []string{"1", "2"}) {
			t.Fatalf("stale listing, upstream down: %v", got)
		}
		if v := e.metric("airlock_cache_stale_serves_total", "rule", "aks-managed-mcr"); v != 1 {
			t.Fatalf("stale serves metric %v, want 1", v)
		}
		e.up.ClearFaults()

		// Unknown upstream: unknown here too, unless tags are held here.
		if _, _, err := e.eng.Tags(ctx, "aks-managed-repository/oss/none", "", 0); !errors.Is(err, cache.ErrNameUnknown) {
			t.Fatalf("repository unknown upstream and here: %v", err)
		}
		e.deleteTag(upRepo + ":2")
		e.deleteTag(upRepo + ":1")
		clock.Advance(rules.DefaultTagTTL)
		if got, _ := e.tags("", 0); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("repository gone upstream, a tag held here: %v", got)
		}
	})
}

// tagList: local keeps ACR's listing exactly: the local tags, no upstream
// request; a repository with none is unknown.
func TestTagListLocal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s stores) {
		r := aksRule()
		r.TagList = rules.TagListLocal
		e := newEnv(t, s, envOpt{rules: []rules.Rule{r}})
		e.up.PushImage(t, upRepo+":1", 100, 1)
		e.up.PushImage(t, upRepo+":2", 100, 1)
		ctx := context.Background()
		if _, _, err := e.eng.Tags(ctx, repo, "", 0); !errors.Is(err, cache.ErrNameUnknown) {
			t.Fatalf("nothing pulled: %v, want ErrNameUnknown", err)
		}
		if _, err := e.eng.Manifest(ctx, repo, "2", true); err != nil {
			t.Fatal(err)
		}
		e.up.Reset()
		if got, _ := e.tags("", 0); !slices.Equal(got, []string{"2"}) {
			t.Fatalf("local listing: %v", got)
		}
		if n := e.up.Total(); n != 0 {
			t.Fatalf("a local listing made %d upstream requests", n)
		}
	})
}
