package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// The large image of the parallel-fetch test: one incompressible layer of
// five 8 MiB chunks and a bit (six ranged GETs), its upstream body capped
// at 16 MiB/s so that the fill runs for ~2.5 s while containerd asks for the
// later chunks.
const (
	largeRepo  = "ctr2/large"
	largeImage = largeRepo + ":v1"
	largeSize  = "40MiB"
	largeBW    = "16MiB"
	fetchChunk = 8 << 20
)

// containerd 2 with parallel layer fetch on (8 MiB chunks, three at a time)
// pulls a 40 MiB layer cold through airlock, then a second node pulls it
// from airlock's cache (parallelFetchScenario).
func TestContainerd2ParallelFetch(t *testing.T) {
	t.Parallel()
	needRoot(t)
	containerd2.need(t)
	ctx := testContext(t, 3*time.Minute)
	m, p := localPath(t, ctx, "rangebootstrap", "ranges",
		"--extra", largeImage+"="+largeSize, "--fault", "kind=blob-data,repo="+largeRepo+",bw="+largeBW)
	parallelFetchScenario(t, ctx, m, p)
}

// parallelFetchScenario: containerd 2 fetches the large layer as
// `Range: bytes=0-` and then bytes=8MiB-, 16MiB-, ... (each read for one
// chunk), with its Accept-Encoding. Cold, the later chunks join airlock's
// running fill, and upstream sees one GET of the layer; warm (a second
// node), upstream sees nothing. Each time containerd logged exactly the
// chunk offsets and airlock's Content-Ranges, airlock answered every GET of
// the layer with 206 and nothing with a Content-Encoding, and the image is
// unpacked with content that verifies (checkUnpacked). Finally airlock's
// answers to `Accept-Encoding: zstd, gzip` are the stored bytes
// (checkServedAsStored).
func parallelFetchScenario(t *testing.T, ctx context.Context, m *marServer, p pullPath) {
	t.Helper()
	p.mark()
	img := mustImage(t, m.images(t, ctx), largeImage)
	pm, ok := img.Platform("linux/amd64")
	if !ok || len(pm.Layers) != 1 {
		t.Fatalf("%s: want one linux/amd64 layer: %+v", largeImage, img)
	}
	layer := pm.Layers[0]
	chunks := (layer.Size + fetchChunk - 1) / fetchChunk
	if chunks < 4 {
		t.Fatalf("%s: layer of %d bytes is only %d chunks: the test proves little", largeImage, layer.Size, chunks)
	}
	layerPath := "/v2/" + mirrorRepo + "/" + largeRepo + "/blobs/" + layer.Digest.String()

	var daemons []*containerd
	var files map[string]string // the layer's files, read once through airlock
	for i, cold := range []bool{true, false} {
		c := startContainerd(t, ctx, containerd2, "", p.node(i), parallelFetch(fetchChunk))
		daemons = append(daemons, c)
		m.resetStats(t, ctx)
		coalesced := p.metric(t, ctx, "airlock_cache_coalesced_total", `kind="blob"`)
		t0 := time.Now()
		if err := c.pull(ctx, largeImage); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		c.checkImages(t, ctx, []catalog.Image{img}, true)
		checkChunks(t, c, layer, fetchChunk)
		st := m.stats(t, ctx)
		want := int64(1)
		if !cold {
			want = 0
			if st.Total() != 0 {
				t.Errorf("warm pull: %d upstream requests, want 0: %+v", st.Total(), st.Requests)
			}
		}
		if gets, fetches := st.Count("GET", mar.KindBlob, layer.Digest.String()), st.Fetches(layer.Digest.String()); gets != want || fetches != want {
			t.Errorf("cold=%v: layer %s: %d GETs upstream (%d fetches), want %d", cold, layer.Digest, gets, fetches, want)
		}
		joined := p.metric(t, ctx, "airlock_cache_coalesced_total", `kind="blob"`) - coalesced
		// Through replicas the chunks may join a relay on one and the
		// owner's fill on another: the upstream's one GET is the truth.
		if cold && joined < 2 && len(p.airlocks) == 1 {
			t.Errorf("cold pull: %v blob requests joined airlock's running fill, want ≥ 2 (the chunks fetched alongside the first)", joined)
		}
		answers := eventually(t, 5*time.Second, func() ([]int, bool) {
			var codes []int
			for _, r := range p.requests() {
				if r.Method == http.MethodGet && r.Path == layerPath && strings.HasPrefix(r.UA, containerd2.ua) {
					codes = append(codes, r.Status)
				}
			}
			return codes, int64(len(codes)) == int64(i+1)*chunks
		})
		if int64(len(answers)) != int64(i+1)*chunks || slices.ContainsFunc(answers, func(s int) bool { return s != http.StatusPartialContent }) {
			t.Errorf("airlock's answers to the GETs of the layer after %d pulls: %v, want %d × 206", i+1, answers, int64(i+1)*chunks)
		}
		if files == nil {
			files = layerContent(t, ctx, p.airlocks[0], largeRepo, pm)
		}
		c.checkUnpacked(t, ctx, files)
		t.Logf("cold=%v: %s (%d MiB layer) pulled in %v as %d ranged GETs of ≤ %d MiB; %v joined the running fill; upstream: %d layer GETs",
			cold, largeImage, layer.Size>>20, took.Round(time.Millisecond), chunks, fetchChunk>>20, joined, st.Count("GET", mar.KindBlobData, layer.Digest.String()))
	}
	ranged, chunked := checkRangedBlobs(t, p, daemons...)
	checkDaemonRequests(t, p, daemons...)
	checkServedAsStored(t, ctx, p.airlocks[0], largeRepo, img, pm)
	t.Logf("containerd 2 sent %d ranged blob GETs (%d past offset 0), each answered 206 by airlock with the stored bytes", ranged, chunked)
}

// checkChunks checks, from the daemon's log, that it fetched layer as
// parallel chunks: one GET at each multiple of chunk (bytes=N-), each
// answered with the Content-Range from N to the end.
func checkChunks(t *testing.T, c *containerd, layer v1.Descriptor, chunk int64) {
	t.Helper()
	var want, wantCR, got, gotCR []string
	for off := int64(0); off < layer.Size; off += chunk {
		want = append(want, fmt.Sprintf("bytes=%d-", off))
		wantCR = append(wantCR, fmt.Sprintf("bytes %d-%d/%d", off, layer.Size-1, layer.Size))
	}
	reqs, resps := c.wire()
	for _, r := range reqs {
		if strings.Contains(r.URL, "/blobs/"+layer.Digest.String()) {
			got = append(got, r.Range)
		}
	}
	for _, r := range resps {
		if strings.Contains(r.URL, "/blobs/"+layer.Digest.String()) {
			gotCR = append(gotCR, r.ContentRange)
		}
	}
	slices.Sort(got)
	slices.Sort(gotCR)
	slices.Sort(want)
	slices.Sort(wantCR)
	if !slices.Equal(got, want) || !slices.Equal(gotCR, wantCR) {
		t.Errorf("containerd 2 fetched the %d-byte layer with Range %v, answered %v; want Range %v, answered %v", layer.Size, got, gotCR, want, wantCR)
	}
}

// layerContent reads the single-layer image pm through airlock: its
// config's diff ID, which must be what the layer decompresses to, and the
// layer's files (path → digest); the "" key holds the diff ID.
func layerContent(t *testing.T, ctx context.Context, a *airlockServer, repo string, pm catalog.PlatformManifest) map[string]string {
	t.Helper()
	var cfg v1.ConfigFile
	if err := json.Unmarshal(blobBytes(t, ctx, a, repo, pm.Config, nil), &cfg); err != nil {
		t.Fatalf("config %s: %v", pm.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != 1 || len(pm.Layers) != 1 {
		t.Fatalf("want a single layer: config has diff_ids %v", cfg.RootFS.DiffIDs)
	}
	files, diffID := layerFiles(t, blobBytes(t, ctx, a, repo, pm.Layers[0], nil))
	if diffID != cfg.RootFS.DiffIDs[0].String() {
		t.Fatalf("layer %s decompresses to %s, the config's diff_id is %s", pm.Layers[0].Digest, diffID, cfg.RootFS.DiffIDs[0])
	}
	if len(files) == 0 {
		t.Fatal("the layer holds no file: the check proves nothing")
	}
	files[""] = diffID
	return files
}

// checkUnpacked checks that containerd unpacked a single-layer image into
// the content its layer holds (layerContent): the committed snapshot is
// named by the chain ID of the config's diff_ids, the layer's diff ID
// (containerd checked the diff ID of what it applied), and every file in a
// view of the snapshot has the bytes of the layer's tar entry.
func (c *containerd) checkUnpacked(t *testing.T, ctx context.Context, files map[string]string) {
	t.Helper()
	chainID := files[""]
	if !strings.Contains(c.mustCtr(t, ctx, "snapshots", "ls"), chainID+" ") {
		t.Fatalf("no committed snapshot %s (the chain ID of the config's diff_ids)", chainID)
	}
	dir := c.snapshotDir(t, ctx, chainID)
	for name, want := range files {
		if name == "" {
			continue
		}
		if got := fileDigest(t, filepath.Join(dir, filepath.FromSlash(name))); got != want {
			t.Errorf("unpacked %s is %s, the layer's tar entry %s", name, got, want)
		}
	}
}

// snapshotDir returns the directory holding the files of the committed
// single-layer snapshot key, without mounting anything: it prepares an
// active snapshot on it (ctr labels it a GC root, so the garbage collector
// that runs after a pull cannot remove it under the test, as it can a
// view; it goes with the daemon's root), whose mounts name the directory:
// overlayfs's lowerdir, or a bind mount's source.
func (c *containerd) snapshotDir(t *testing.T, ctx context.Context, key string) string {
	t.Helper()
	active := "e2e-read-" + strings.TrimPrefix(key, "sha256:")[:12]
	out := c.mustCtr(t, ctx, "snapshots", "prepare", "--mounts", active, key)
	var mounts []struct {
		Type, Source string
		Options      []string
	}
	if err := json.Unmarshal([]byte(out), &mounts); err != nil || len(mounts) != 1 {
		t.Fatalf("snapshot mounts of %s: %v:\n%s", active, err, out)
	}
	switch m := mounts[0]; m.Type {
	case "bind":
		return m.Source
	case "overlay":
		for _, o := range m.Options {
			if dir, ok := strings.CutPrefix(o, "lowerdir="); ok && !strings.Contains(dir, ":") {
				return dir
			}
		}
	}
	t.Fatalf("cannot tell the directory of single-layer snapshot %s from its mounts:\n%s", key, out)
	return ""
}

// layerFiles reads a gzip'd tar layer: the digest of each regular file's
// content by path, and the layer's diff ID.
func layerFiles(t *testing.T, layer []byte) (map[string]string, string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	diff := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, diff))
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = "sha256:" + hex.EncodeToString(sum.Sum(nil))
	}
	if _, err := io.Copy(io.Discard, io.TeeReader(zr, diff)); err != nil { // the tar's padding
		t.Fatal(err)
	}
	return files, "sha256:" + hex.EncodeToString(diff.Sum(nil))
}

// blobBytes GETs a blob through airlock's mirror path with extra headers
// and checks the answer is the blob as stored: 200, no Content-Encoding,
// the size and digest of the descriptor.
func blobBytes(t *testing.T, ctx context.Context, a *airlockServer, repo string, d v1.Descriptor, header http.Header) []byte {
	t.Helper()
	url := a.url + "/v2/" + mirrorRepo + "/" + repo + "/blobs/" + d.Digest.String() + "?ns=mcr.microsoft.com"
	resp, body := get(t, ctx, url, header)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" || int64(len(body)) != d.Size || digestOf(body) != d.Digest.String() {
		t.Fatalf("GET %s (%v): %s, Content-Encoding %q, %d bytes hashing to %s; want 200, none, %d bytes of %s",
			url, header, resp.Status, resp.Header.Get("Content-Encoding"), len(body), digestOf(body), d.Size, d.Digest)
	}
	return body
}

// checkServedAsStored asks airlock for the image's manifest, config and
// layer with `Accept-Encoding: zstd, gzip` (the manifest and config also
// with containerd's variant with weights, which the daemons' logs cover for
// the layer), whole and from `Range: bytes=0-`: every answer is the stored
// bytes, with no Content-Encoding.
func checkServedAsStored(t *testing.T, ctx context.Context, a *airlockServer, repo string, img catalog.Image, pm catalog.PlatformManifest) {
	t.Helper()
	for _, ae := range []string{"zstd, gzip", acceptEncoding} {
		h := http.Header{"Accept-Encoding": {ae}}
		url := a.url + "/v2/" + mirrorRepo + "/" + repo + "/manifests/" + img.Tag + "?ns=mcr.microsoft.com"
		mh := http.Header{"Accept-Encoding": {ae}, "Accept": {string(img.MediaType)}}
		resp, body := get(t, ctx, url, mh)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" || digestOf(body) != img.Digest.String() {
			t.Errorf("GET %s with Accept-Encoding %q: %s, Content-Encoding %q, body %s; want 200, none, %s",
				url, ae, resp.Status, resp.Header.Get("Content-Encoding"), digestOf(body), img.Digest)
		}
		blobs := []v1.Descriptor{pm.Config}
		if ae == "zstd, gzip" {
			blobs = append(blobs, pm.Layers[0])
		}
		for _, d := range blobs {
			blobBytes(t, ctx, a, repo, d, h)
			rh := http.Header{"Accept-Encoding": {ae}, "Range": {"bytes=0-"}}
			url := a.url + "/v2/" + mirrorRepo + "/" + repo + "/blobs/" + d.Digest.String() + "?ns=mcr.microsoft.com"
			resp, body := get(t, ctx, url, rh)
			wantCR := fmt.Sprintf("bytes 0-%d/%d", d.Size-1, d.Size)
			if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantCR ||
				resp.Header.Get("Content-Encoding") != "" || digestOf(body) != d.Digest.String() {
				t.Errorf("GET %s with Range bytes=0- and Accept-Encoding %q: %s, Content-Range %q, Content-Encoding %q, body %s; want 206, %s, none, %s",
					url, ae, resp.Status, resp.Header.Get("Content-Range"), resp.Header.Get("Content-Encoding"), digestOf(body), wantCR, d.Digest)
			}
		}
	}
}

// get makes one GET with header and returns the answer and its body, as
// sent: the client neither adds an Accept-Encoding nor decodes.
func get(t *testing.T, ctx context.Context, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}, Timeout: time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
