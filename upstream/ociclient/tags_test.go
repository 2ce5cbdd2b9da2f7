package ociclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// Tags follows the upstream's pagination to the last page.
func TestTagsFollowsPages(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	want := []string{"1.0", "1.1", "2.0", "latest", "v3"}
	for _, tag := range want {
		up.PushImage(t, "oss/app:"+tag, 100, 1)
	}
	up.PageTags(2)
	c := newClient(t, up.URL())
	ctx := context.Background()
	got, err := c.Tags(ctx, upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/app"})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("tags %v %v, want %v", got, err, want)
	}
	if n := up.Count("GET", "/tags/list"); n != 3 {
		t.Fatalf("%d page requests for 5 tags in pages of 2, want 3", n)
	}
	if _, err := c.Tags(ctx, upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/none"}); !errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("unknown repository: %v", err)
	}
}

// A Link that leaves the repository's listing, points back at the same
// page or never ends is an error, not a loop or a request elsewhere.
func TestTagsBadLinks(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		link func(r *http.Request) string // nil: a body that is not JSON
		want string
	}{
		"other host": {func(*http.Request) string { return `<http://127.0.0.2:1/v2/oss/app/tags/list?last=a>; rel="next"` }, "leaves the repository's tags/list"},
		"other path": {func(*http.Request) string { return `</v2/oss/other/tags/list?last=a>; rel="next"` }, "leaves the repository's tags/list"},
		"same page":  {func(*http.Request) string { return `</v2/oss/app/tags/list?last=a>; rel="next"` }, "is the page just read"},
		"never ends": {func(r *http.Request) string {
			return fmt.Sprintf(`</v2/oss/app/tags/list?last=%s_>; rel="next"`, r.URL.Query().Get("last"))
		}, "more than 1000 pages"},
		"bad json": {nil, "tag listing: unexpected end of JSON input"},
		// rel may list several relation types.
		"many params": {func(*http.Request) string { return `</v2/oss/app/tags/list?last=a>; title="x"; rel="prev next"` }, "is the page just read"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				if tc.link == nil {
					w.Write([]byte(`{"tags":`))
					return
				}
				w.Header().Set("Link", tc.link(r))
				w.Write([]byte(`{"name":"oss/app","tags":["a"]}`))
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL)
			_, err := c.Tags(context.Background(), upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/app"})
			var ue *upstream.Error
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an upstream error saying %q", err, tc.want)
			}
		})
	}
}
