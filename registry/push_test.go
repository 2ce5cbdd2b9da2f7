package registry_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// pushBlob uploads b monolithically to repo and returns its digest.
func (e *env) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	resp, body := e.send("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b)
	if resp.StatusCode != 201 {
		e.t.Fatalf("push blob: %d %s", resp.StatusCode, body)
	}
	return d
}

type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// manifestJSON builds an OCI image manifest.
func manifestJSON(config desc, layers []desc, extra map[string]any) []byte {
	m := map[string]any{"schemaVersion": 2, "mediaType": mtManifest, "config": config, "layers": layers}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// pushImage pushes a config and one layer to repo and returns the manifest.
func (e *env) pushImage(repo string, seed string) ([]byte, desc) {
	e.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer bytes " + seed)
	c := desc{MediaType: mtConfig, Digest: e.pushBlob(repo, cfg), Size: int64(len(cfg))}
	l := desc{MediaType: mtLayer, Digest: e.pushBlob(repo, layer), Size: int64(len(layer))}
	m := manifestJSON(c, []desc{l}, nil)
	return m, desc{MediaType: mtManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
}

// A real client (go-containerregistry) pushes an image and pulls it back.
func TestPushWithClientAndPullBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	img, err := random.Image(300_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(e.srv.URL, "http://")+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opt := remote.WithTransport(e.client.Transport)
	if err := remote.Write(ref, img, opt); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref, opt)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := img.Digest()
	gd, _ := got.Digest()
	if wd != gd {
		t.Fatalf("pulled %s, pushed %s", gd, wd)
	}
	readLayers(t, got)
	resp, body := e.do("GET", "/v2/team/app/tags/list")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"v1"`) {
		t.Fatalf("tags: %d %s", resp.StatusCode, body)
	}
	if n := e.up.Total(); n != 0 {
		t.Fatalf("a push made %d upstream requests", n)
	}
	if got := e.metric("airlock_push_total", "kind", "manifest"); got != 1 {
		t.Fatalf("airlock_push_total{kind=manifest} = %v", got)
	}
}

// Chunked upload: Location, Range and Docker-Upload-UUID after each step,
// an out-of-order chunk refused with 416 (the session intact), status with
// GET, and sha512.
func TestChunkedUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	blob := bytes.Repeat([]byte("0123456789"), 500)
	sum := sha512.Sum512(blob)
	d512 := digest.NewDigestFromBytes(digest.SHA512, sum[:])

	resp, _ := e.send("POST", "/v2/team/chunky/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || !strings.HasPrefix(loc, "/v2/team/chunky/blobs/uploads/") || resp.Header.Get("Range") != "0-0" ||
		resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("POST: %d %v", resp.StatusCode, resp.Header)
	}
	chunk := func(start, end int, wantStatus int) *http.Response {
		resp, body := e.send("PATCH", loc, blob[start:end+1], "Content-Range", fmt.Sprintf("%d-%d", start, end), "Content-Type", "application/octet-stream")
		if resp.StatusCode != wantStatus {
			t.Fatalf("PATCH %d-%d: %d %s", start, end, resp.StatusCode, body)
		}
		return resp
	}
	resp = chunk(0, 1999, 202)
	if resp.Header.Get("Range") != "0-1999" {
		t.Fatalf("Range after first chunk: %q", resp.Header.Get("Range"))
	}
	loc = resp.Header.Get("Location")
	resp = chunk(3000, 3999, 416)
	if resp.Header.Get("Range") != "0-1999" || resp.Header.Get("Location") == "" {
		t.Fatalf("416 must report the session: %v", resp.Header)
	}
	resp, _ = e.do("GET", loc)
	if resp.StatusCode != 204 || resp.Header.Get("Range") != "0-1999" {
		t.Fatalf("status: %d %v", resp.StatusCode, resp.Header)
	}
	chunk(2000, 3999, 202)
	// The last chunk rides on the PUT.
	resp, body := e.send("PUT", loc+"?digest="+d512.String(), blob[4000:], "Content-Range", fmt.Sprintf("%d-%d", 4000, len(blob)-1))
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != d512.String() ||
		resp.Header.Get("Location") != "/v2/team/chunky/blobs/"+d512.String() {
		t.Fatalf("PUT: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, got := e.do("GET", "/v2/team/chunky/blobs/"+d512.String())
	if resp.StatusCode != 200 || !bytes.Equal(got, blob) {
		t.Fatalf("GET sha512 blob: %d", resp.StatusCode)
	}
	if resp, body := e.do("GET", loc); resp.StatusCode != 404 || errorCode(body) != "BLOB_UPLOAD_UNKNOWN" {
		t.Fatalf("finished session still answers: %d %s", resp.StatusCode, body)
	}
}

// A streamed PATCH, then a PUT with the wrong digest: DIGEST_INVALID,
// nothing stored, the session gone.
func TestUploadDigestMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	resp, _ = e.send("PATCH", loc, []byte("some bytes"))
	if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("PATCH: %d %v", resp.StatusCode, resp.Header)
	}
	wrong := digest.FromString("other bytes")
	resp, body := e.send("PUT", resp.Header.Get("Location")+"?digest="+wrong.String(), nil)
	if resp.StatusCode != 400 || errorCode(body) != "DIGEST_INVALID" {
		t.Fatalf("PUT wrong digest: %d %s", resp.StatusCode, body)
	}
	for _, d := range []digest.Digest{wrong, digest.FromString("some bytes")} {
		if resp, _ := e.do("HEAD", "/v2/team/app/blobs/"+d.String()); resp.StatusCode != 404 {
			t.Fatalf("HEAD %s after a mismatch: %d", d, resp.StatusCode)
		}
	}
	if resp, _ := e.do("GET", loc); resp.StatusCode != 404 {
		t.Fatalf("session after a mismatch: %d", resp.StatusCode)
	}
	// Monolithic with a wrong digest too.
	resp, body = e.send("POST", "/v2/team/app/blobs/uploads/?digest="+wrong.String(), []byte("not it"))
	if resp.StatusCode != 400 || errorCode(body) != "DIGEST_INVALID" {
		t.Fatalf("monolithic wrong digest: %d %s", resp.StatusCode, body)
	}
}

func TestMountAndCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	d := e.pushBlob("team/a", []byte("shared layer"))
	resp, _ := e.send("POST", "/v2/team/b/blobs/uploads/?mount="+d.String()+"&from=team/a", nil)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/v2/team/b/blobs/"+d.String() {
		t.Fatalf("mount: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, body := e.do("GET", "/v2/team/b/blobs/"+d.String()); resp.StatusCode != 200 || string(body) != "shared layer" {
		t.Fatalf("mounted blob: %d", resp.StatusCode)
	}
	// Not in the source: an upload session instead.
	missing := digest.FromString("nowhere")
	resp, _ = e.send("POST", "/v2/team/b/blobs/uploads/?mount="+missing.String()+"&from=team/a", nil)
	if resp.StatusCode != 202 {
		t.Fatalf("mount of a missing blob: %d", resp.StatusCode)
	}
	resp, _ = e.send("DELETE", resp.Header.Get("Location"), nil)
	if resp.StatusCode != 204 {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
	// From a cache-rule repository that does not hold it: no upstream call.
	resp, _ = e.send("POST", "/v2/team/b/blobs/uploads/?mount="+missing.String()+"&from="+repo, nil)
	if resp.StatusCode != 202 || e.up.Total() != 0 {
		t.Fatalf("mount from a cache repository: %d, upstream %d", resp.StatusCode, e.up.Total())
	}
}

func TestManifestPutChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	m, md := e.pushImage("team/app", "checks")
	cfg := []byte(`{"c":1}`)
	cd := e.pushBlob("team/app", cfg)
	goodCfg := desc{MediaType: mtConfig, Digest: cd, Size: int64(len(cfg))}
	unknown := desc{MediaType: mtLayer, Digest: digest.FromString("never pushed"), Size: 12}
	foreign := desc{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Digest: digest.FromString("elsewhere"), Size: 12, URLs: []string{"https://example.com/x"}}
	cases := []struct {
		name, ref, ct string
		body          []byte
		status        int
		code          string
	}{
		{"by tag", "v1", mtManifest, m, 201, ""},
		{"by digest", md.Digest.String(), mtManifest, m, 201, ""},
		{"digest mismatch", digest.FromString("x").String(), mtManifest, m, 400, "DIGEST_INVALID"},
		{"not json", "v2", mtManifest, []byte("{not json"), 400, "MANIFEST_INVALID"},
		{"schema 1", "v2", mtManifest, []byte(`{"schemaVersion":1,"config":{"digest":"` + cd.String() + `"}}`), 400, "MANIFEST_INVALID"},
		{"type mismatch", "v2", mtIndex, m, 400, "MANIFEST_INVALID"},
		{"unknown type", "v2", "application/vnd.example+json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.example+json"}`), 400, "MANIFEST_INVALID"},
		{"missing layer", "v2", mtManifest, manifestJSON(goodCfg, []desc{unknown}, nil), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"foreign layer", "v3", mtManifest, manifestJSON(goodCfg, []desc{foreign}, nil), 201, ""},
		{"missing child", "v2", mtIndex, []byte(`{"schemaVersion":2,"mediaType":"` + mtIndex + `","manifests":[{"mediaType":"` + mtManifest + `","digest":"` + unknown.Digest.String() + `","size":1}]}`), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"bad tag", "-bad", mtManifest, m, 400, "TAG_INVALID"},
		{"too large", "v2", mtManifest, bytes.Repeat([]byte(" "), 4<<20+1), 413, "MANIFEST_INVALID"},
	}
	for _, c := range cases {
		resp, body := e.send("PUT", "/v2/team/app/manifests/"+c.ref, c.body, "Content-Type", c.ct)
		if resp.StatusCode != c.status || errorCode(body) != c.code {
			t.Errorf("%s: got %d %s, want %d %s", c.name, resp.StatusCode, body, c.status, c.code)
		}
	}
	resp, body := e.do("GET", "/v2/team/app/manifests/v1")
	if resp.StatusCode != 200 || !bytes.Equal(body, m) || resp.Header.Get("Content-Type") != mtManifest ||
		resp.Header.Get("Docker-Content-Digest") != md.Digest.String() {
		t.Fatalf("pull pushed manifest: %d %v", resp.StatusCode, resp.Header)
	}
}

// A manifest with a subject is listed among the subject's referrers and
// its PUT answers OCI-Subject; tag parameters answer OCI-Tag.
func TestSubjectReferrersAndTagParams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	_, subj := e.pushImage("team/app", "subject")
	m, _ := e.pushImage("team/app", "subject")
	if resp, body := e.send("PUT", "/v2/team/app/manifests/"+subj.Digest.String()+"?tag=one&tag=two", m, "Content-Type", mtManifest); resp.StatusCode != 201 ||
		strings.Join(resp.Header.Values("OCI-Tag"), ",") != "one,two" {
		t.Fatalf("PUT with tags: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	empty := []byte("{}")
	ed := e.pushBlob("team/app", empty)
	sig := manifestJSON(desc{MediaType: "application/vnd.oci.empty.v1+json", Digest: ed, Size: 2}, []desc{},
		map[string]any{"artifactType": "application/vnd.example.sig", "subject": subj, "annotations": map[string]string{"who": "ci"}})
	resp, body := e.send("PUT", "/v2/team/app/manifests/sig", sig, "Content-Type", mtManifest)
	if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != subj.Digest.String() {
		t.Fatalf("PUT with subject: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var idx struct {
		Manifests []desc `json:"manifests"`
	}
	for _, q := range []string{"", "?artifactType=application/vnd.example.sig"} {
		resp, body = e.do("GET", "/v2/team/app/referrers/"+subj.Digest.String()+q)
		if err := json.Unmarshal(body, &idx); err != nil || resp.StatusCode != 200 || len(idx.Manifests) != 1 {
			t.Fatalf("referrers%s: %d %s", q, resp.StatusCode, body)
		}
		r := idx.Manifests[0]
		if r.Digest != digest.FromBytes(sig) || r.ArtifactType != "application/vnd.example.sig" || r.Annotations["who"] != "ci" {
			t.Fatalf("referrer %+v", r)
		}
	}
	if resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatal("filtered referrers must say so")
	}
}

func TestDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpt{})
	m, md := e.pushImage("team/app", "deletes")
	for _, tag := range []string{"a", "b"} {
		if resp, _ := e.send("PUT", "/v2/team/app/manifests/"+tag, m, "Content-Type", mtManifest); resp.StatusCode != 201 {
			t.Fatalf("PUT %s: %d", tag, resp.StatusCode)
		}
	}
	steps := []struct {
		method, path string
		status       int
	}{
		{"DELETE", "/v2/team/app/manifests/a", 202},
		{"HEAD", "/v2/team/app/manifests/a", 404},
		{"HEAD", "/v2/team/app/manifests/b", 200},
		{"DELETE", "/v2/team/app/manifests/a", 404},
		{"DELETE", "/v2/team/app/manifests/" + md.Digest.String(), 202},
		{"HEAD", "/v2/team/app/manifests/b", 404}, // tags go with their manifest
		{"HEAD", "/v2/team/app/manifests/" + md.Digest.String(), 404},
		{"DELETE", "/v2/team/app/blobs/" + digest.FromString("layer bytes deletes").String(), 202},
		{"HEAD", "/v2/team/app/blobs/" + digest.FromString("layer bytes deletes").String(), 404},
		{"DELETE", "/v2/team/app/blobs/" + digest.FromString("layer bytes deletes").String(), 404},
		{"DELETE", "/v2/team/app/blobs/sha256:nothex", 400},
	}
	for _, s := range steps {
		if resp, body := e.do(s.method, s.path); resp.StatusCode != s.status {
			t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, resp.StatusCode, body, s.status)
		}
	}
}

// readLayers reads every layer of img whole, which verifies each digest.
func readLayers(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest while reading
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
