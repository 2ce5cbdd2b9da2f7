package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock/airlock/rules"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const repo = "aks-managed-repository/oss/kubernetes/pause"

func TestPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	resp, body := e.do("GET", "/v2/")
	if resp.StatusCode != 200 || string(body) != "{}" {
		t.Fatalf("ping: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("missing API version header")
	}
	if resp, _ := e.do("GET", "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

func TestManifestByTagAndDigest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 1024, 2)
	raw, _ := img.RawManifest()
	d, _ := img.Digest()
	mt, _ := img.MediaType()

	// containerd resolves with HEAD first, with ?ns=.
	resp, _ := e.do("HEAD", "/v2/"+repo+"/manifests/3.10?ns=mcr.microsoft.com",
		"Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	if resp.StatusCode != 200 {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("digest %q want %s", got, d)
	}
	if resp.Header.Get("Content-Length") != fmt.Sprint(len(raw)) || resp.Header.Get("Content-Type") != string(mt) {
		t.Fatalf("headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Azure-Origin") != "upstream" {
		t.Fatalf("first pull must be marked X-Azure-Origin: upstream")
	}
	if n := e.up.Count("GET", "/manifests/"); n != 1 {
		t.Fatalf("upstream manifest GETs: %d, want 1", n)
	}
	resp, body := e.do("GET", "/v2/"+repo+"/manifests/"+d.String()+"?ns=mcr.microsoft.com")
	if resp.StatusCode != 200 || !bytes.Equal(body, raw) {
		t.Fatalf("GET by digest: %d, identical=%v", resp.StatusCode, bytes.Equal(body, raw))
	}
	if resp.Header.Get("X-Azure-Origin") != "" {
		t.Fatalf("a cached answer must not claim upstream origin")
	}
	resp, body = e.do("GET", "/v2/"+repo+"/manifests/3.10")
	if !bytes.Equal(body, raw) || resp.Header.Get("Content-Type") != string(mt) {
		t.Fatalf("GET by tag not byte-identical")
	}
	if n := e.up.Total(); n != 1 {
		t.Fatalf("upstream requests after warm pulls: %d, want 1", n)
	}
}

func TestBlobGetHeadRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 100_000, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	want, _ := io.ReadAll(rc)
	path := "/v2/" + repo + "/blobs/" + ld.String() + "?ns=mcr.microsoft.com"

	// A cold Range request is served from the growing fill.
	resp, body := e.do("GET", path, "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(body, want[10:20]) {
		t.Fatalf("cold range: %d %q", resp.StatusCode, body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 10-19/%d", len(want)) {
		t.Fatalf("Content-Range %q", cr)
	}
	resp, body = e.do("GET", path)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET: %d equal=%v", resp.StatusCode, bytes.Equal(body, want))
	}
	if resp.Header.Get("Docker-Content-Digest") != ld.String() || resp.Header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, body = e.do("GET", path, "Range", "bytes=99990-")
	if resp.StatusCode != 206 || !bytes.Equal(body, want[99990:]) {
		t.Fatalf("warm range: %d", resp.StatusCode)
	}
	resp, body = e.do("HEAD", path)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	if n := e.up.Count("GET", "/blobs/"+ld.String()); n != 1 {
		t.Fatalf("upstream blob GETs %d, want 1", n)
	}
}

// With tagList: local, a rule's repository lists what is held locally, as
// ACR's cache does (the default union with the upstream's tags is in
// taglist_test.go).
func TestTagsListPaging(t *testing.T) {
	t.Parallel()
	local := aksRule()
	local.TagList = rules.TagListLocal
	e := newEnv(t, envOpt{rules: []rules.Rule{local}})
	for _, tag := range []string{"a", "b", "c", "d", "e"} {
		e.up.PushImage(t, "oss/app:"+tag, 64, 1)
		if resp, _ := e.do("HEAD", "/v2/aks-managed-repository/oss/app/manifests/"+tag); resp.StatusCode != 200 {
			t.Fatalf("pull %s: %d", tag, resp.StatusCode)
		}
	}
	e.up.PushImage(t, "oss/app:never-pulled", 64, 1)
	type list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	get := func(q string) (list, string) {
		resp, body := e.do("GET", "/v2/aks-managed-repository/oss/app/tags/list"+q)
		if resp.StatusCode != 200 {
			t.Fatalf("tags/list%s: %d %s", q, resp.StatusCode, body)
		}
		var l list
		json.Unmarshal(body, &l)
		return l, resp.Header.Get("Link")
	}
	l, link := get("")
	if strings.Join(l.Tags, ",") != "a,b,c,d,e" || link != "" || l.Name != "aks-managed-repository/oss/app" {
		t.Fatalf("all tags (only those held locally): %+v link %q", l, link)
	}
	l, link = get("?n=2")
	if strings.Join(l.Tags, ",") != "a,b" || !strings.Contains(link, "last=b") || !strings.Contains(link, `rel="next"`) {
		t.Fatalf("page 1: %+v %q", l, link)
	}
	l, link = get("?n=2&last=d")
	if strings.Join(l.Tags, ",") != "e" || link != "" {
		t.Fatalf("last page: %+v %q", l, link)
	}
	l, _ = get("?n=0")
	if len(l.Tags) != 0 {
		t.Fatalf("n=0: %+v", l)
	}
	if resp, body := e.do("GET", "/v2/aks-managed-repository/oss/app/tags/list?n=-1"); resp.StatusCode != 400 || errorCode(body) != "PAGINATION_NUMBER_INVALID" {
		t.Fatalf("bad n: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do("GET", "/v2/aks-managed-repository/none/tags/list"); resp.StatusCode != 404 || errorCode(body) != "NAME_UNKNOWN" {
		t.Fatalf("unknown repo tags: %d %s", resp.StatusCode, body)
	}
	resp, body := e.do("GET", "/v2/_catalog?n=10")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"aks-managed-repository/oss/app"`) {
		t.Fatalf("catalog: %d %s", resp.StatusCode, body)
	}
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img := e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	d, _ := img.Digest()
	sig := e.pushReferrer(t, "oss/kubernetes/pause", img, "application/vnd.example.signature")
	// Pull the subject first, as a client would.
	e.do("HEAD", "/v2/"+repo+"/manifests/3.10")

	resp, body := e.do("GET", "/v2/"+repo+"/referrers/"+d.String())
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("referrers: %d %s", resp.StatusCode, body)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig {
		t.Fatalf("referrers passed through from upstream: %s (%v)", body, err)
	}
	resp, body = e.do("GET", "/v2/"+repo+"/referrers/"+d.String()+"?artifactType=application/vnd.other")
	json.Unmarshal(body, &idx)
	if resp.StatusCode != 200 || len(idx.Manifests) != 0 || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	unknown := "sha256:" + strings.Repeat("0", 64)
	resp, body = e.do("GET", "/v2/"+repo+"/referrers/"+unknown)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"manifests":[]`) {
		t.Fatalf("referrers of an unknown digest must be an empty index, got %d %s", resp.StatusCode, body)
	}
}

func TestErrorsAndNoRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/other/repo/manifests/latest", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/other/repo/blobs/sha256:" + strings.Repeat("a", 64), 404, "NAME_UNKNOWN"},
		{"GET", "/v2/" + repo + "/manifests/missing", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/" + repo + "/blobs/sha256:" + strings.Repeat("b", 64), 404, "BLOB_UNKNOWN"},
		{"GET", "/v2/" + repo + "/blobs/sha256:short", 400, "DIGEST_INVALID"},
		{"GET", "/v2/UPPER/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/a/%2e%2e/b/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/" + repo + "/manifests/bad:tag!", 400, "TAG_INVALID"},
		{"POST", "/v2/" + repo + "/blobs/uploads/", 403, "DENIED"},
		{"PUT", "/v2/" + repo + "/manifests/latest", 403, "DENIED"},
		{"DELETE", "/v2/" + repo + "/manifests/3.10", 403, "DENIED"},
		{"GET", "/v2/nothing-here", 405, "UNSUPPORTED"},
	}
	before := e.up.Total()
	for _, c := range cases {
		resp, body := e.do(c.method, c.path)
		if resp.StatusCode != c.status || errorCode(body) != c.code {
			t.Errorf("%s %s: got %d %s, want %d %s", c.method, c.path, resp.StatusCode, body, c.status, c.code)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error Content-Type %q", c.method, c.path, resp.Header.Get("Content-Type"))
		}
	}
	// Of these only the two unknown objects under the rule reach upstream.
	if n := e.up.Total() - before; n != 2 {
		t.Fatalf("upstream requests for the error cases: %d, want 2", n)
	}
	e.up.Reset()
	e.do("GET", "/v2/other/repo/manifests/latest")
	e.do("GET", "/v2/other/repo/blobs/sha256:"+strings.Repeat("a", 64))
	if n := e.up.Total(); n != 0 {
		t.Fatalf("a repository matched by no rule made %d upstream requests, want 0", n)
	}
}

// pushReferrer pushes an artifact whose subject is img to the upstream.
func (e *env) pushReferrer(t *testing.T, upRepo string, img v1.Image, artifactType string) v1.Hash {
	t.Helper()
	d, _ := img.Digest()
	size, _ := img.Size()
	mt, _ := img.MediaType()
	empty := []byte("{}")
	cfgDesc := `{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,"config":%s,"layers":[%s],"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
		artifactType, cfgDesc, cfgDesc, mt, d, size)
	ref := e.up.Ref(t, upRepo+":sig")
	// Push the empty blob, then the manifest, with plain HTTP.
	base := e.up.URL() + "/v2/" + upRepo
	hc := e.up.SetupClient()
	resp, err := hc.Post(base+"/blobs/uploads/?digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "application/octet-stream", bytes.NewReader(empty))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("push empty blob: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("PUT", base+"/manifests/sig", strings.NewReader(man))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err = hc.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("push referrer: %v %v", err, resp)
	}
	resp.Body.Close()
	desc, err := remote.Head(ref, e.up.Setup())
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}
