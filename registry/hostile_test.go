package registry_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/registry"
	"github.com/opencontainers/go-digest"
)

// Names and references outside the spec grammar are refused before
// anything touches the store, and nothing lands outside it.
func TestHostileNamesAndReferences(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	long := strings.Repeat("a", 256)
	longTag := strings.Repeat("t", 129)
	d := digest.FromString("x").String()
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/a/../b/manifests/latest", 400, "NAME_INVALID"},
		{"PUT", "/v2/a/%2e%2e/b/manifests/latest", 400, "NAME_INVALID"},
		{"POST", "/v2/%2e%2e/%2e%2e/etc/blobs/uploads/", 400, "NAME_INVALID"},
		{"POST", "/v2//etc/passwd/blobs/uploads/", 400, "NAME_INVALID"},
		{"PUT", "/v2/a/./b/manifests/latest", 400, "NAME_INVALID"},
		{"POST", "/v2/a%2F..%2F..%2Fx/blobs/uploads/", 400, "NAME_INVALID"},
		{"POST", "/v2/" + long + "/blobs/uploads/", 400, "NAME_INVALID"},
		{"GET", "/v2/" + long + "/tags/list", 400, "NAME_INVALID"},
		{"DELETE", "/v2/a\\b/blobs/" + d, 400, "NAME_INVALID"},
		{"PUT", "/v2/team/app/manifests/" + longTag, 400, "TAG_INVALID"},
		{"GET", "/v2/team/app/manifests/" + longTag, 400, "TAG_INVALID"},
		{"PUT", "/v2/team/app/manifests/..", 400, "TAG_INVALID"},
		{"DELETE", "/v2/team/app/manifests/.hidden", 400, "TAG_INVALID"},
		{"PATCH", "/v2/team/app/blobs/uploads/..%2F..%2Fingest", 405, "UNSUPPORTED"}, // no route has a / in an id
		{"PATCH", "/v2/team/app/blobs/uploads/..", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET", "/v2/team/app/blobs/sha256:..%2F..%2Fetc%2Fpasswd", 405, "UNSUPPORTED"},
		{"GET", "/v2/team/app/blobs/uploads/" + strings.Repeat("a", 32), 404, "BLOB_UPLOAD_UNKNOWN"},
	}
	for _, c := range cases {
		resp, body := e.send(c.method, c.path, []byte("{}"))
		if resp.StatusCode != c.status || errorCode(body) != c.code {
			t.Errorf("%s %s: got %d %s, want %d %s", c.method, c.path, resp.StatusCode, body, c.status, c.code)
		}
	}
	// Only the store's own directories exist under the storage root, and
	// nothing was written next to it.
	err := filepath.WalkDir(e.storage, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() && !strings.Contains(p, string(filepath.Separator)+"meta"+string(filepath.Separator)) {
			t.Errorf("unexpected file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(e.storage)); len(entries) != 1 {
		t.Errorf("files appeared beside the storage dir: %d entries", len(entries))
	}
}

func TestHostileDigests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	bad := []string{
		"sha256:xyz",
		"sha256:" + strings.Repeat("a", 63),
		"sha256:" + strings.Repeat("A", 64),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha256",
		"sha256:..",
		"blake3:" + strings.Repeat("a", 64),
	}
	for _, d := range bad {
		for _, c := range []struct{ method, path string }{
			{"GET", "/v2/team/app/blobs/" + d},
			{"DELETE", "/v2/team/app/blobs/" + d},
			{"POST", "/v2/team/app/blobs/uploads/?digest=" + d},
			{"GET", "/v2/team/app/referrers/" + d},
		} {
			resp, body := e.send(c.method, c.path, []byte("x"))
			if resp.StatusCode != 400 || errorCode(body) != "DIGEST_INVALID" {
				t.Errorf("%s %s: %d %s, want 400 DIGEST_INVALID", c.method, c.path, resp.StatusCode, body)
			}
		}
	}
}

// Range policy: one range per request; malformed, multiple or past-the-end
// ranges are 416 with the size; an end past the blob is clamped.
func TestHostileRanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	blob := []byte(strings.Repeat("r", 1000))
	d := e.pushBlob("team/app", blob)
	path := "/v2/team/app/blobs/" + d.String()
	cases := []struct {
		rng    string
		status int
		cr     string
	}{
		{"bytes=0-9", 206, "bytes 0-9/1000"},
		{"bytes=990-5000", 206, "bytes 990-999/1000"},
		{"bytes=-10", 206, "bytes 990-999/1000"},
		{"bytes=1000-", 416, "bytes */1000"},
		{"bytes=5-1", 416, "bytes */1000"},
		{"bytes=0-1,5-6", 416, "bytes */1000"},
		{"bytes=abc", 416, "bytes */1000"},
		{"items=0-1", 416, "bytes */1000"},
		{"bytes=+1-2", 416, "bytes */1000"},
		{"bytes=99999999999999999999-", 416, "bytes */1000"},
		{"bytes=-0", 416, "bytes */1000"},
	}
	for _, c := range cases {
		resp, body := e.do("GET", path, "Range", c.rng)
		if resp.StatusCode != c.status || resp.Header.Get("Content-Range") != c.cr {
			t.Errorf("Range %q: %d %q, want %d %q", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), c.status, c.cr)
		}
		if c.status == 416 && errorCode(body) != "RANGE_INVALID" {
			t.Errorf("Range %q: body %s", c.rng, body)
		}
	}
}

// One client cannot hold more than its share of upload sessions.
func TestUploadCapPerClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{engine: []engine.Option{engine.WithMaxUploadsPerClient(2)}})
	var locs []string
	for i := range 2 {
		resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil)
		if resp.StatusCode != 202 {
			t.Fatalf("session %d: %d", i, resp.StatusCode)
		}
		locs = append(locs, resp.Header.Get("Location"))
	}
	resp, body := e.send("POST", "/v2/team/app/blobs/uploads/", nil)
	if resp.StatusCode != 429 || errorCode(body) != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third session: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	e.send("DELETE", locs[0], nil)
	if resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil); resp.StatusCode != 202 {
		t.Fatalf("after a cancel: %d", resp.StatusCode)
	}
}

// A client that stops sending its body is cut after the body idle timeout;
// its session keeps what arrived.
func TestStalledUploadBodyIsCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{registry: []registry.Option{registry.WithBodyIdleTimeout(200 * time.Millisecond)}})
	resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789", loc)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	sresp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		sresp.Body.Close()
		if sresp.StatusCode != 400 {
			t.Fatalf("stalled PATCH answered %d", sresp.StatusCode)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stalled body held the server for %v", took)
	}
	resp, _ = e.do("GET", loc)
	if resp.StatusCode != 204 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("session after the cut: %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
}
