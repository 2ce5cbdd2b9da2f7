package registry_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchEnv is a warm airlock holding one 16 MiB layer and its manifest.
func benchEnv(b *testing.B) (e *env, blobPath, manifestPath, file string, size int64) {
	b.Helper()
	e = newEnv(b, envOpt{})
	img := e.up.PushImage(b, "oss/kubernetes/pause:3.10", 16<<20, 1)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	size, _ = layers[0].Size()
	blobPath = "/v2/" + repo + "/blobs/" + d.String() + "?ns=mcr.microsoft.com"
	manifestPath = "/v2/" + repo + "/manifests/3.10?ns=mcr.microsoft.com"
	e.do("GET", blobPath)
	e.do("HEAD", manifestPath)
	file = filepath.Join(e.storage, "content", "blobs", "sha256", d.Hex[:2], d.Hex)
	if _, err := os.Stat(file); err != nil {
		b.Fatal(err)
	}
	return e, blobPath, manifestPath, file, size
}

func fetch(b *testing.B, c *http.Client, method, url string) int64 {
	req, _ := http.NewRequest(method, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("%s %s: %d %v", method, url, resp.StatusCode, err)
	}
	return n
}

// serveFile is the bare baseline of the benchmarks: the file at path
// through http.ServeContent, as airlock serves a warm blob; a file that
// cannot be opened answers status.
func serveFile(w http.ResponseWriter, r *http.Request, path string, status int) {
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// BenchmarkWarmBlob compares a warm blob GET through airlock with a bare
// http.ServeContent of the same file, in the same run.
func BenchmarkWarmBlob(b *testing.B) {
	e, blobPath, _, file, size := benchEnv(b)
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, r, file, http.StatusInternalServerError)
	}))
	defer bare.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	for _, tc := range []struct{ name, url string }{
		{"bare-servecontent", bare.URL + "/blob"},
		{"airlock", e.srv.URL + blobPath},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				fetch(b, c, "GET", tc.url)
			}
		})
	}
}

// BenchmarkManifestHEAD compares a warm manifest HEAD by tag (what
// containerd sends first) with a bare handler setting the same headers.
func BenchmarkManifestHEAD(b *testing.B) {
	e, _, manifestPath, _, _ := benchEnv(b)
	resp, _ := e.do("HEAD", manifestPath)
	hdr := resp.Header.Clone()
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"Content-Type", "Docker-Content-Digest", "Content-Length", "Etag"} {
			w.Header().Set(k, hdr.Get(k))
		}
		w.WriteHeader(200)
	}))
	defer bare.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for _, tc := range []struct{ name, url string }{
		{"bare-handler", bare.URL + "/v2/x/manifests/3.10"},
		{"airlock", e.srv.URL + manifestPath},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fetch(b, c, "HEAD", tc.url)
			}
		})
	}
}

// BenchmarkWarmSmallPull is a warm pull of a small image (manifest by tag,
// by digest, two 4 KiB layers): per-request overhead against a bare server
// that answers the same paths with http.ServeContent of the same files and
// the manifest from memory.
func BenchmarkWarmSmallPull(b *testing.B) {
	e := newEnv(b, envOpt{})
	img := e.up.PushImage(b, "oss/kubernetes/pause:3.10", 4096, 2)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	d2, _ := layers[1].Digest()
	md, _ := img.Digest()
	paths := []string{
		"/v2/" + repo + "/manifests/3.10?ns=mcr.microsoft.com",
		"/v2/" + repo + "/manifests/" + md.String() + "?ns=mcr.microsoft.com",
		"/v2/" + repo + "/blobs/" + d.String() + "?ns=mcr.microsoft.com",
		"/v2/" + repo + "/blobs/" + d2.String() + "?ns=mcr.microsoft.com",
	}
	for _, p := range paths {
		e.do("GET", p)
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", string(mt))
			w.Header().Set("Docker-Content-Digest", md.String())
			w.Write(raw)
			return
		}
		hex := r.URL.Path[strings.LastIndex(r.URL.Path, ":")+1:]
		serveFile(w, r, filepath.Join(e.storage, "content", "blobs", "sha256", hex[:2], hex), http.StatusNotFound)
	}))
	defer bare.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	for _, tc := range []struct{ name, base string }{{"bare", bare.URL}, {"airlock", e.srv.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				for _, p := range paths {
					req, _ := http.NewRequest("GET", tc.base+p, nil)
					resp, err := c.Do(req)
					if err != nil || resp.StatusCode != 200 {
						b.Fatal(err, resp)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
}
