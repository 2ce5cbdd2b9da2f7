package mar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

func TestChallenge(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	c := newClient(t)
	for _, path := range []string{"/v2/", "/v2/_catalog", "/v2/oss/kubernetes/pause/manifests/3.10", "/v2/oss/kubernetes/pause/blobs/sha256:" + strings.Repeat("a", 64)} {
		resp, body := c.do("GET", s.URL()+path, nil)
		want := fmt.Sprintf(`Bearer realm="http://%s/oauth2/token",service="%s"`, s.Addr(), s.Addr())
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), want) || errCode(body) != "UNAUTHORIZED" || !bytes.Contains(body, []byte(`"message":"authentication required`)) {
			t.Errorf("GET %s: %s %q %s", path, resp.Status, resp.Header.Get("Www-Authenticate"), body)
		}
	}
	resp, _ := c.do("GET", s.URL()+"/v2/oss/kubernetes/pause/tags/list", nil)
	if !strings.HasSuffix(resp.Header.Get("Www-Authenticate"), `,scope="repository:oss/kubernetes/pause:pull"`) {
		t.Errorf("challenge without scope: %q", resp.Header.Get("Www-Authenticate"))
	}
	c.token = "123.forged"
	if resp, _ := c.do("GET", s.URL()+"/v2/", nil); resp.StatusCode != 401 {
		t.Errorf("forged token: %s", resp.Status)
	}
	c.login(s)
	if resp, _ := c.do("GET", s.URL()+"/v2/", nil); resp.StatusCode != 200 {
		t.Errorf("with token: %s", resp.Status)
	}
	if resp, _ := c.do("POST", s.URL()+"/oauth2/token", nil); resp.StatusCode != 200 {
		t.Errorf("POST token: %s", resp.Status)
	}
}

func TestManifests(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	c := newClient(t).login(s)
	pause := image(t, s, "oss/kubernetes/pause", "3.10")
	kp := image(t, s, "oss/kubernetes/kube-proxy", "v1.31.3")
	m, _ := s.Catalog().Resolve("oss/kubernetes/kube-proxy", kp.Platforms[1].Digest.String())
	for _, tc := range []struct {
		method, path string
		status       int
		mediaType    string
		digest       v1.Hash
		body         []byte
		code         string
	}{
		{"HEAD", "/v2/oss/kubernetes/pause/manifests/3.10?ns=mcr.microsoft.com", 200, "application/vnd.oci.image.index.v1+json", pause.Digest, nil, ""},
		{"GET", "/v2/oss/kubernetes/kube-proxy/manifests/" + m.Digest.String() + "?ns=mcr.microsoft.com&x=1", 200, "application/vnd.docker.distribution.manifest.v2+json", m.Digest, m.Raw, ""},
		{"GET", "/v2/oss/kubernetes/kube-proxy/manifests/v1.31.3", 200, "application/vnd.docker.distribution.manifest.list.v2+json", kp.Digest, nil, ""},
		{"GET", "/v2/oss/kubernetes/pause/manifests/9.99", 404, "", v1.Hash{}, nil, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/oss/kubernetes/pause/manifests/sha256:" + strings.Repeat("0", 64), 404, "", v1.Hash{}, nil, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/oss/nope/manifests/1", 404, "", v1.Hash{}, nil, "NAME_UNKNOWN"},
		{"GET", "/v2/Bad_Name/manifests/1", 400, "", v1.Hash{}, nil, "NAME_INVALID"},
		{"HEAD", "/v2/oss/kubernetes/pause/manifests/9.99", 404, "", v1.Hash{}, nil, ""},
		{"PUT", "/v2/oss/kubernetes/pause/manifests/3.10", 405, "", v1.Hash{}, nil, "UNSUPPORTED"},
		{"DELETE", "/v2/oss/kubernetes/pause/manifests/" + pause.Digest.String(), 405, "", v1.Hash{}, nil, "UNSUPPORTED"},
	} {
		resp, body := c.do(tc.method, s.URL()+tc.path, nil)
		if resp.StatusCode != tc.status || errCode(body) != tc.code {
			t.Errorf("%s %s: %s %s", tc.method, tc.path, resp.Status, body)
			continue
		}
		if tc.status != 200 {
			continue
		}
		raw, _ := s.Catalog().Resolve(strings.Split(strings.TrimPrefix(tc.path, "/v2/"), "/manifests/")[0], tc.digest.String())
		if resp.Header.Get("Content-Type") != tc.mediaType || resp.Header.Get("Docker-Content-Digest") != tc.digest.String() ||
			resp.ContentLength != int64(len(raw.Raw)) {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, resp.Header)
		}
		if tc.method == "GET" && !bytes.Equal(body, raw.Raw) {
			t.Errorf("%s %s: body differs from stored bytes", tc.method, tc.path)
		}
		if tc.body != nil && !bytes.Equal(body, tc.body) {
			t.Errorf("%s %s: body", tc.method, tc.path)
		}
	}
}

func TestBlobsRedirectAndRange(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	c := newClient(t).login(s)
	kp := image(t, s, "oss/kubernetes/kube-proxy", "v1.31.3")
	l := kp.Platforms[0].Layers[2]
	blob, _ := s.Catalog().Blob("oss/kubernetes/kube-proxy", l.Digest)
	rc, _ := blob.Open()
	want := new(bytes.Buffer)
	want.ReadFrom(rc)
	rc.Close()
	path := s.URL() + "/v2/oss/kubernetes/kube-proxy/blobs/" + l.Digest.String()

	resp, _ := c.do("HEAD", path+"?ns=mcr.microsoft.com", nil)
	if resp.StatusCode != 200 || resp.ContentLength != l.Size || resp.Header.Get("Docker-Content-Digest") != l.Digest.String() {
		t.Fatalf("HEAD blob: %s %v", resp.Status, resp.Header)
	}
	resp, _ = c.do("GET", path, nil)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 307 || err != nil || loc.Host != s.DataAddr() || loc.Query().Get("sig") == "" {
		t.Fatalf("GET blob: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
	anon := newClient(t) // the CDN needs no token
	resp, body := anon.do("GET", loc.String(), nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, want.Bytes()) || resp.Header.Get("Docker-Content-Digest") != l.Digest.String() || resp.ContentLength != l.Size {
		t.Fatalf("GET data: %s, %d bytes", resp.Status, len(body))
	}
	resp, body = anon.do("GET", loc.String(), map[string]string{"Range": "bytes=100-"})
	if resp.StatusCode != 206 || !bytes.Equal(body, want.Bytes()[100:]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-%d/%d", l.Size-1, l.Size) {
		t.Fatalf("range: %s %q %d bytes", resp.Status, resp.Header.Get("Content-Range"), len(body))
	}
	resp, _ = anon.do("HEAD", loc.String(), nil)
	if resp.StatusCode != 200 || resp.ContentLength != l.Size {
		t.Fatalf("HEAD data: %s", resp.Status)
	}
	q := loc.Query()
	q.Set("rn", "oss/kubernetes/pause") // signature covers the repository
	tampered := *loc
	tampered.RawQuery = q.Encode()
	if resp, _ := anon.do("GET", tampered.String(), nil); resp.StatusCode != 403 {
		t.Errorf("tampered URL: %s", resp.Status)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/oss/kubernetes/pause/blobs/" + l.Digest.String(), 404, "BLOB_UNKNOWN"}, // not in this repo
		{"GET", "/v2/oss/kubernetes/pause/blobs/sha256:123", 400, "DIGEST_INVALID"},
		{"GET", "/v2/oss/nope/blobs/" + l.Digest.String(), 404, "NAME_UNKNOWN"},
		{"POST", "/v2/oss/kubernetes/pause/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PATCH", "/v2/oss/kubernetes/pause/blobs/uploads/123", 405, "UNSUPPORTED"},
	} {
		resp, body := c.do(tc.method, s.URL()+tc.path, nil)
		if resp.StatusCode != tc.status || errCode(body) != tc.code {
			t.Errorf("%s %s: %s %s", tc.method, tc.path, resp.Status, body)
		}
	}
}

func TestTagsAndCatalogPaging(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	c := newClient(t).login(s)
	all, _ := s.Catalog().Tags("oss/kubernetes/kube-proxy")
	var got []string
	next := "/v2/oss/kubernetes/kube-proxy/tags/list?n=3"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		resp, body := c.do("GET", s.URL()+next, nil)
		var tl struct {
			Name string
			Tags []string
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &tl) != nil || tl.Name != "oss/kubernetes/kube-proxy" || len(tl.Tags) > 3 {
			t.Fatalf("%s: %s %s", next, resp.Status, body)
		}
		got = append(got, tl.Tags...)
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			next = strings.TrimPrefix(strings.Split(link, ">")[0], "<")
		}
	}
	if strings.Join(got, ",") != strings.Join(all, ",") || len(all) != 4 {
		t.Errorf("paged tags %v, want %v", got, all)
	}
	resp, body := c.do("GET", s.URL()+"/v2/_catalog?n=2&last=oss/kubernetes/coredns", nil)
	if resp.StatusCode != 200 || string(body) != `{"repositories":["oss/kubernetes/kube-proxy","oss/kubernetes/pause"]}` {
		t.Errorf("catalog page: %s %s", resp.Status, body)
	}
	if resp, body := c.do("GET", s.URL()+"/v2/nope/tags/list", nil); resp.StatusCode != 404 || errCode(body) != "NAME_UNKNOWN" {
		t.Errorf("unknown repo tags: %s %s", resp.Status, body)
	}
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	c := newClient(t).login(s)
	pause := image(t, s, "oss/kubernetes/pause", "3.10")
	for _, tc := range []struct {
		path     string
		n        int
		filtered bool
	}{
		{"/v2/oss/kubernetes/pause/referrers/" + pause.Digest.String(), 2, false},
		{"/v2/oss/kubernetes/pause/referrers/" + pause.Digest.String() + "?artifactType=" + url.QueryEscape(catalog.ArtifactTypeNotarySignature), 1, true},
		{"/v2/oss/kubernetes/pause/referrers/" + pause.Digest.String() + "?artifactType=application/x-none", 0, true},
		{"/v2/oss/kubernetes/pause/referrers/sha256:" + strings.Repeat("1", 64), 0, false},
		{"/v2/oss/nope/referrers/sha256:" + strings.Repeat("1", 64), 0, false},
	} {
		resp, body := c.do("GET", s.URL()+tc.path, nil)
		im, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if resp.StatusCode != 200 || err != nil || im.Manifests == nil || len(im.Manifests) != tc.n ||
			resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" || (resp.Header.Get("OCI-Filters-Applied") == "artifactType") != tc.filtered {
			t.Errorf("%s: %s %v %s", tc.path, resp.Status, resp.Header, body)
		}
		if tc.n == 1 && im.Manifests[0].ArtifactType != catalog.ArtifactTypeNotarySignature {
			t.Errorf("%s: %+v", tc.path, im.Manifests[0])
		}
	}
	if resp, body := c.do("GET", s.URL()+"/v2/oss/kubernetes/pause/referrers/nope", nil); resp.StatusCode != 400 || errCode(body) != "DIGEST_INVALID" {
		t.Errorf("bad digest: %s %s", resp.Status, body)
	}
}

func TestAdminImages(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	resp, body := newClient(t).do("GET", s.URL()+"/_mar/images", nil)
	var imgs []catalog.Image
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &imgs) != nil || len(imgs) != len(s.Catalog().Images()) {
		t.Fatalf("/_mar/images: %s %.200s", resp.Status, body)
	}
}
