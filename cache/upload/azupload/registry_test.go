package azupload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/azupload"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// node is a replica serving the registry API: its engine over the shared
// content store, index and session store.
type node struct {
	*replica
	url  string
	eng  *engine.Engine
	prom *prometheus.Registry
}

// cluster is n replicas serving one container, with no upstream to reach
// (pushed content only: the fake counts any upstream call).
type cluster struct {
	t     testing.TB
	nodes []*node
	up    *upstreamtest.Fake
	hc    *http.Client
}

func newCluster(t testing.TB, srv *azuritetest.Server, n int, l upload.Limits, opts ...azupload.Option) *cluster {
	t.Helper()
	c := &cluster{t: t, up: upstreamtest.NewFake()}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c.hc = &http.Client{Transport: tr, Timeout: time.Minute}
	for _, r := range replicas(t, srv, n, l, opts...) {
		prom := prometheus.NewRegistry()
		log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
		eng, err := engine.New(r.content, r.idx, c.up, log, prom, engine.WithUploadStore(r.uploads))
		if err != nil {
			t.Fatal(err)
		}
		reg, err := registry.New(eng, log, prom)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(reg)
		t.Cleanup(hs.Close)
		c.nodes = append(c.nodes, &node{replica: r, url: hs.URL, eng: eng, prom: prom})
	}
	return c
}

// do sends a request to replica i and reads the answer.
func (c *cluster) do(i int, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(bg, method, c.nodes[i].url+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for j := 0; j+1 < len(hdr); j += 2 {
		req.Header.Set(hdr[j], hdr[j+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on r%d: %v", method, path, i+1, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s on r%d: %v", method, path, i+1, err)
	}
	return resp, b
}

// expect checks an answer's status.
func (c *cluster) expect(resp *http.Response, body []byte, status int) {
	c.t.Helper()
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: %d %s, want %d", resp.Request.Method, resp.Request.URL, resp.StatusCode, body, status)
	}
}

// patch sends a chunk of the upload at loc to replica i.
func (c *cluster) patch(i int, loc string, start int, chunk []byte) (*http.Response, []byte) {
	c.t.Helper()
	return c.do(i, "PATCH", loc, bytes.NewReader(chunk),
		"Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("%d-%d", start, start+len(chunk)-1))
}

// begin starts an upload to repo on replica i and sends first as its
// first chunk there; it returns the session's location and ID.
func (c *cluster) begin(i int, repo string, first []byte) (loc, id string) {
	c.t.Helper()
	resp, body := c.do(i, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	c.expect(resp, body, http.StatusAccepted)
	loc, id = resp.Header.Get("Location"), resp.Header.Get("Docker-Upload-UUID")
	resp, body = c.patch(i, loc, 0, first)
	c.expect(resp, body, http.StatusAccepted)
	return resp.Header.Get("Location"), id
}

// pushBlob uploads b to repo on replica i in one request.
func (c *cluster) pushBlob(i int, repo string, b []byte) digest.Digest {
	c.t.Helper()
	d := digest.FromBytes(b)
	resp, body := c.do(i, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(b))
	c.expect(resp, body, http.StatusCreated)
	return d
}

// noSessions checks that no session record or data is left in the
// container.
func (c *cluster) noSessions() {
	c.t.Helper()
	n := 0
	for _, pfx := range []string{azupload.DataPrefix, "meta/u/"} {
		pager := c.nodes[0].ctr.Client().NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &pfx})
		for pager.More() {
			page, err := pager.NextPage(bg)
			if err != nil {
				c.t.Fatal(err)
			}
			for _, b := range page.Segment.BlobItems {
				c.t.Errorf("left behind: %s", *b.Name)
				n++
			}
		}
	}
	if n > 0 {
		c.t.FailNow()
	}
}

func patterned(n int, seed string) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s:%d|", seed, i)
	}
	return b.Bytes()[:n]
}

const mtManifest = "application/vnd.oci.image.manifest.v1+json"

// A blob pushed in chunks through three replicas (POST and a PATCH on r1,
// a PATCH on r2, the last chunk with the PUT on r3) commits; the image it
// is a layer of pulls from every replica, with no upstream request and no
// session left in the container.
func testPushAnywhere(t *testing.T, srv *azuritetest.Server) {
	c := newCluster(t, srv, 3, upload.Limits{}, azupload.WithBlockSize(256<<10))
	const repo = "team/app"
	layer := patterned(3<<20+12345, "layer")
	ld := digest.FromBytes(layer)

	resp, body := c.do(0, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	c.expect(resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	cuts := []int{0, 1 << 20, 2<<20 + 7, len(layer)}
	for i, replica := range []int{0, 1} {
		resp, body = c.patch(replica, loc, cuts[i], layer[cuts[i]:cuts[i+1]])
		c.expect(resp, body, http.StatusAccepted)
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", cuts[i+1]-1); got != want {
			t.Fatalf("Range after the chunk on r%d: %q, want %q", replica+1, got, want)
		}
		loc = resp.Header.Get("Location")
	}
	resp, body = c.do(2, "GET", loc, nil)
	c.expect(resp, body, http.StatusNoContent)
	if got := resp.Header.Get("Range"); got != fmt.Sprintf("0-%d", cuts[2]-1) {
		t.Fatalf("status on r3: Range %q", got)
	}
	resp, body = c.do(2, "PUT", loc+"?digest="+ld.String(), bytes.NewReader(layer[cuts[2]:]),
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", cuts[2], len(layer)-1))
	c.expect(resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != ld.String() {
		t.Fatalf("PUT on r3: digest header %q", got)
	}
	for i := range c.nodes {
		resp, body = c.do(i, "GET", loc, nil)
		c.expect(resp, body, http.StatusNotFound)
	}

	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := c.pushBlob(1, repo, cfg)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}},
	})
	resp, body = c.do(0, "PUT", "/v2/"+repo+"/manifests/v1", bytes.NewReader(m), "Content-Type", mtManifest)
	c.expect(resp, body, http.StatusCreated)

	for i := range c.nodes {
		resp, body = c.do(i, "GET", "/v2/"+repo+"/manifests/v1", nil, "Accept", mtManifest)
		c.expect(resp, body, http.StatusOK)
		if !bytes.Equal(body, m) {
			t.Fatalf("manifest from r%d differs", i+1)
		}
		for d, want := range map[digest.Digest][]byte{ld: layer, cd: cfg} {
			resp, body = c.do(i, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
			c.expect(resp, body, http.StatusOK)
			if !bytes.Equal(body, want) {
				t.Fatalf("blob %s from r%d: %d bytes differ from the %d pushed", d, i+1, len(body), len(want))
			}
		}
	}
	if n := c.up.Total(); n != 0 {
		t.Fatalf("pushes and pulls of pushed content made %d upstream calls", n)
	}
	c.noSessions()
}

// leased waits until the session's append blob is leased: a request is
// inside it.
func (c *cluster) leased(id string) {
	c.t.Helper()
	bc := c.nodes[0].ctr.Client().NewBlobClient(azupload.DataPrefix + id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := bc.GetProperties(bg, nil)
		if err != nil {
			c.t.Fatal(err)
		}
		if p.LeaseState != nil && *p.LeaseState == lease.StateTypeLeased {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("session %s never held", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two PATCHes of the same chunk reach two replicas at once: the second
// finds the first writing and gets 416 with the session's range (nothing
// of it written); the first completes; the client goes on from there.
func testConflictingPatch(t *testing.T, srv *azuritetest.Server) {
	c := newCluster(t, srv, 3, upload.Limits{})
	const repo = "team/race"
	blob := patterned(200_000, "race")
	loc, id := c.begin(0, repo, blob[:50_000])

	// r1's PATCH of the next chunk streams slowly: it holds the session.
	pr, pw := io.Pipe()
	first := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequestWithContext(bg, "PATCH", c.nodes[0].url+loc, pr)
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", 50_000, 149_999))
		req.ContentLength = 100_000
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Error(err)
			first <- nil
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp
	}()
	if _, err := pw.Write(blob[50_000:60_000]); err != nil {
		t.Fatal(err)
	}
	c.leased(id)
	resp, body := c.patch(1, loc, 50_000, blob[50_000:150_000])
	c.expect(resp, body, http.StatusRequestedRangeNotSatisfiable)
	if got := resp.Header.Get("Range"); got != "0-49999" {
		t.Fatalf("the refused PATCH's Range: %q, want 0-49999", got)
	}
	if _, err := pw.Write(blob[60_000:150_000]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-first; r == nil || r.StatusCode != http.StatusAccepted || r.Header.Get("Range") != "0-149999" {
		t.Fatalf("the first PATCH: %v", r)
	}
	resp, body = c.do(2, "PUT", loc+"?digest="+digest.FromBytes(blob).String(), bytes.NewReader(blob[150_000:]),
		"Content-Range", fmt.Sprintf("%d-%d", 150_000, len(blob)-1))
	c.expect(resp, body, http.StatusCreated)
	resp, body = c.do(1, "GET", "/v2/"+repo+"/blobs/"+digest.FromBytes(blob).String(), nil)
	c.expect(resp, body, http.StatusOK)
	if !bytes.Equal(body, blob) {
		t.Fatal("the committed blob is not the chunks in order")
	}
	c.noSessions()
}

// A replica that dies in the middle of a chunk: its hold ends with its
// lease, the bytes it appended without recording them are adopted by the
// next request (a 416 telling the client where the upload stands), and
// the push completes on another replica.
func testDeadReplicaMidChunk(t *testing.T, srv *azuritetest.Server) {
	c := newCluster(t, srv, 2, upload.Limits{})
	const repo = "team/crash"
	blob := patterned(90_000, "crash")
	loc, id := c.begin(0, repo, blob[:30_000])

	// What r1 did before dying: it took the session's lease and appended
	// a block, and never recorded it.
	name := azupload.DataPrefix + id
	l, err := c.nodes[0].ctr.AcquireLease(bg, name, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, c.nodes[0].replica, name, l.ID(), blob[30_000:45_000])

	resp, body := c.patch(1, loc, 30_000, blob[30_000:60_000])
	c.expect(resp, body, http.StatusRequestedRangeNotSatisfiable)     // still held
	if _, err := c.nodes[0].ctr.BreakLease(bg, name, 0); err != nil { // as if it expired
		t.Fatal(err)
	}
	resp, body = c.patch(1, loc, 30_000, blob[30_000:60_000])
	c.expect(resp, body, http.StatusRequestedRangeNotSatisfiable)
	if got := resp.Header.Get("Range"); got != "0-44999" {
		t.Fatalf("after the dead replica's bytes were adopted: Range %q, want 0-44999", got)
	}
	resp, body = c.patch(1, loc, 45_000, blob[45_000:60_000])
	c.expect(resp, body, http.StatusAccepted)
	d := digest.FromBytes(blob)
	resp, body = c.do(1, "PUT", loc+"?digest="+d.String(), bytes.NewReader(blob[60_000:]),
		"Content-Range", fmt.Sprintf("%d-%d", 60_000, len(blob)-1))
	c.expect(resp, body, http.StatusCreated)
	resp, body = c.do(0, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
	c.expect(resp, body, http.StatusOK)
	if !bytes.Equal(body, blob) {
		t.Fatal("blob differs")
	}
	c.noSessions()
}

// A session left idle past the timeout is unknown on every replica and
// is deleted (record and data); the sweep deletes one nobody asks about,
// and counts it.
func testExpiryAcrossReplicas(t *testing.T, srv *azuritetest.Server) {
	const idle = time.Second
	c := newCluster(t, srv, 2, upload.Limits{Timeout: idle})
	const repo = "team/idle"
	var locs []string
	for range 2 {
		loc, _ := c.begin(0, repo, []byte("abandoned"))
		locs = append(locs, loc)
	}
	time.Sleep(idle + 200*time.Millisecond)
	resp, body := c.do(1, "GET", locs[0], nil)
	c.expect(resp, body, http.StatusNotFound)
	if err := c.nodes[1].uploads.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, body = c.do(0, "PATCH", locs[1], strings.NewReader("late"), "Content-Range", "9-12")
	c.expect(resp, body, http.StatusNotFound)
	c.noSessions()
	var expired int64
	for _, n := range c.nodes {
		expired += n.uploads.Stats().Expired
	}
	if expired != 2 {
		t.Fatalf("expirations counted: %d, want 2", expired)
	}
}
