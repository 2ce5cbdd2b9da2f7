package registry_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock/airlock/upstream/upstreamtest"
)

// Through the API, a rule's repository lists the upstream's tags with the
// local ones, paged with n, last and Link over the union; a repository
// the upstream has is never a 404, even when the upstream is down.
func TestTagsListThroughRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	for _, tag := range []string{"a", "b", "c"} {
		e.up.PushImage(t, "oss/app:"+tag, 64, 1)
	}
	e.up.PageTags(2)
	const path = "/v2/aks-managed-repository/oss/app/tags/list"
	var pages []string
	next := path + "?n=2"
	for next != "" && len(pages) < 5 {
		resp, body := e.do("GET", next)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", next, resp.StatusCode, body)
		}
		var l struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &l); err != nil || l.Name != "aks-managed-repository/oss/app" {
			t.Fatalf("GET %s: %s %v", next, body, err)
		}
		pages = append(pages, strings.Join(l.Tags, ","))
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			u, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`))
			if err != nil || u.Path != path {
				t.Fatalf("Link %q", link)
			}
			next = u.String()
		}
	}
	if strings.Join(pages, " ") != "a,b c" {
		t.Fatalf("pages %q, want the upstream's tags in two pages", pages)
	}

	// Cold and the upstream down: 503 (or 429), never 404.
	e.up.AddFault(upstreamtest.Fault{PathContains: "/oss/cold/", Status: 503})
	if resp, body := e.do("GET", "/v2/aks-managed-repository/oss/cold/tags/list"); resp.StatusCode != 503 || errorCode(body) != "UNAVAILABLE" {
		t.Fatalf("cold listing, upstream down: %d %s", resp.StatusCode, body)
	}
	e.up.AddFault(upstreamtest.Fault{PathContains: "/oss/busy/", Status: 429, RetryAfter: 3})
	if resp, body := e.do("GET", "/v2/aks-managed-repository/oss/busy/tags/list"); resp.StatusCode != 429 || errorCode(body) != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("cold listing, upstream throttling: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body := e.do("GET", "/v2/aks-managed-repository/oss/none/tags/list"); resp.StatusCode != 404 || errorCode(body) != "NAME_UNKNOWN" {
		t.Fatalf("a repository nobody has: %d %s", resp.StatusCode, body)
	}
}
