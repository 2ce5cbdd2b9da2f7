package registry

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/rules"
)

// FuzzParsePath: any path either maps to no route or to one whose parts
// rebuild it; a repository name the grammar accepts never has an empty,
// "." or ".." component, a backslash or a percent sign (so it cannot walk
// out of a directory), and a reference never holds a "/".
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/",
		"/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef", "/v2/a/../b/manifests/x", "/v2//etc/passwd/blobs/sha256:00",
		"/v2/a/tags/list", "/v2/a/referrers/sha256:aa", "/v2/a/manifests/", "/v2/a/blobs/uploads/x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req, ok := parsePath(p)
		if !ok {
			return
		}
		switch req.kind {
		case routePing, routeCatalog:
			if req.repo != "" || req.ref != "" {
				t.Fatalf("%q: %+v", p, req)
			}
			return
		case routeManifest, routeBlob, routeReferrers, routeTags, routeUpload:
		default:
			t.Fatalf("%q: unknown kind %q", p, req.kind)
		}
		if req.repo == "" || strings.Contains(req.ref, "/") {
			t.Fatalf("%q: %+v", p, req)
		}
		seg := map[string]string{routeManifest: "/manifests/", routeBlob: "/blobs/", routeReferrers: "/referrers/", routeUpload: "/blobs/uploads/", routeTags: "/tags/"}[req.kind]
		ref := req.ref
		if req.kind == routeTags {
			ref = "list"
		}
		if got := "/v2/" + req.repo + seg + ref; got != p {
			t.Fatalf("%q parsed as %+v, which rebuilds %q", p, req, got)
		}
		if rules.ValidRepository(req.repo) {
			for _, c := range strings.Split(req.repo, "/") {
				if c == "" || c == "." || c == ".." || strings.ContainsAny(c, `\%`) {
					t.Fatalf("%q: accepted name %q has component %q", p, req.repo, c)
				}
			}
		}
	})
}

// FuzzParseRange: an accepted range lies within the blob, and
// http.ServeContent serves exactly it.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=5-", "bytes=-5", "bytes=0-1,2-3", "bytes=9-0", "items=0-1", "bytes= 1 - 2 ", "bytes=-0", "bytes=+1-2", "bytes=99999999999999999999-"} {
		f.Add(s, uint16(100))
	}
	f.Fuzz(func(t *testing.T, s string, sz uint16) {
		size := int64(sz)
		first, last, err := parseRange(s, size)
		if err != nil {
			return
		}
		if first < 0 || first > last || last >= size {
			t.Fatalf("%q on %d bytes: %d-%d", s, size, first, last)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Range", s)
		w := httptest.NewRecorder()
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(make([]byte, size)))
		want := "bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/" + strconv.FormatInt(size, 10)
		if w.Code != http.StatusPartialContent || w.Header().Get("Content-Range") != want || int64(w.Body.Len()) != last-first+1 {
			t.Fatalf("%q on %d bytes: parsed %d-%d, ServeContent answered %d %q", s, size, first, last, w.Code, w.Header().Get("Content-Range"))
		}
	})
}
