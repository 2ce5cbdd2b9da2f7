package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
)

// acceptEncoding is what containerd 2's fetcher sends with every GET: it
// decodes a Content-Encoding answer itself, so a registry that compressed a
// blob on the wire would still hand containerd the right bytes, but a proxy
// that re-encoded a stored blob would break its digest.
const acceptEncoding = "zstd;q=1.0, gzip;q=0.8, deflate;q=0.5"

// parallelFetch turns on containerd 2's parallel layer fetch: a layer
// bigger than chunk bytes is fetched as ranges of chunk bytes, three at a
// time.
func parallelFetch(chunk int64) labnode.FetchConfig {
	return labnode.FetchConfig{ChunkSize: chunk, MaxConcurrentDownloads: 3}
}

// checkConfigPath checks that containerd 2 took the registry config_path
// from nodeconfig's v3 snippet: the CRI images plugin exports it, and hands
// it to the transfer service with every pull the kubelet asks for — the
// directory ctr names with --hosts-dir in these tests.
func (c *containerd) checkConfigPath(t *testing.T, ctx context.Context) {
	t.Helper()
	out := c.mustCtr(t, ctx, "plugins", "ls", "--detailed", "type==io.containerd.cri.v1,id==images")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "RegistryConfigPath" {
			if f[1] != c.node.certs {
				t.Fatalf("containerd 2's CRI registry config_path is %s, nodeconfig's v3 snippet says %s", f[1], c.node.certs)
			}
			return
		}
	}
	t.Fatalf("containerd 2's CRI images plugin exports no RegistryConfigPath (the v3 snippet %s was not applied):\n%s", c.node.v3Snippet(), out)
}

// wireLine is a registry request ("do request") or response ("fetch
// response received") a containerd 2 daemon logged at debug level.
type wireLine struct {
	Msg             string `json:"msg"`
	URL             string `json:"url"`
	Method          string `json:"request.method"`
	Range           string `json:"request.header.range"`
	AcceptEncoding  string `json:"request.header.accept-encoding"`
	Status          string `json:"response.status"`
	ContentRange    string `json:"response.header.content-range"`
	ContentEncoding string `json:"response.header.content-encoding"`
}

// wire returns the registry requests and responses the daemon logged.
func (c *containerd) wire() (reqs, resps []wireLine) {
	for _, l := range strings.Split(c.out.String(), "\n") {
		var w wireLine
		if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &w) != nil {
			continue
		}
		switch w.Msg {
		case "do request":
			reqs = append(reqs, w)
		case "fetch response received":
			resps = append(resps, w)
		}
	}
	return reqs, resps
}

// checkDaemonRoutes checks that every registry request the containerd 2
// daemons logged went to the airlock their node's hosts.toml names, under
// /v2/aks-managed-repository/ with ?ns=mcr.microsoft.com, and that there
// were some (the transfer service fetched); it returns how many.
func checkDaemonRoutes(t *testing.T, daemons ...*containerd) int {
	t.Helper()
	sent := 0
	for _, c := range daemons {
		reqs, _ := c.wire()
		sent += len(reqs)
		for _, r := range reqs {
			if !strings.HasPrefix(r.URL, c.node.registry+"/v2/"+mirrorRepo+"/") || !strings.HasSuffix(r.URL, "?ns=mcr.microsoft.com") {
				t.Errorf("containerd 2 requested %s %s, not through its hosts.toml (%s)", r.Method, r.URL, c.node.registry)
			}
		}
	}
	if sent == 0 {
		t.Fatal("the containerd 2 daemons logged no registry request: the transfer service did not fetch")
	}
	return sent
}

// checkDaemonRequests checks, after pulls only, that the containerd 2
// daemons made the registry requests themselves (the transfer service; ctr
// made none) and only through their node's hosts.toml (checkDaemonRoutes),
// and that the airlocks of p logged exactly as many requests from
// containerd 2: each reached airlock, and none came from elsewhere.
// containerd 1.6's daemon makes no registry request: nothing to check.
func checkDaemonRequests(t *testing.T, p pullPath, daemons ...*containerd) {
	t.Helper()
	if len(daemons) == 0 || !daemons[0].rel.v2() {
		return
	}
	sent := checkDaemonRoutes(t, daemons...)
	got := eventually(t, 5*time.Second, func() (int, bool) {
		n := 0
		for _, r := range p.requests() {
			if strings.HasPrefix(r.UA, containerd2.ua) && strings.HasPrefix(r.Path, "/v2/") {
				n++
			}
		}
		return n, n == sent
	})
	if got != sent {
		t.Errorf("the containerd 2 daemons sent %d registry requests, airlock logged %d from containerd 2", sent, got)
	}
}

// checkRangedBlobs checks the blob exchanges of containerd 2 daemons
// running with parallel layer fetch: every blob GET carried a Range
// (bytes=N-) and containerd's Accept-Encoding, every answer was 206 with
// no Content-Encoding (nor did any other answer have one), and the airlocks
// answered as many blob GETs from containerd 2 with 206. It returns the
// number of ranged blob requests and of those at an offset past 0 (the
// chunks fetched in parallel).
func checkRangedBlobs(t *testing.T, p pullPath, daemons ...*containerd) (ranged, chunks int) {
	t.Helper()
	for _, c := range daemons {
		reqs, resps := c.wire()
		for _, r := range reqs {
			if r.Method != "GET" || !strings.Contains(r.URL, "/blobs/") {
				continue
			}
			ranged++
			off, ok := rangeOffset(r.Range)
			if !ok {
				t.Errorf("containerd 2 (parallel fetch on) sent GET %s with Range %q, want bytes=N-", r.URL, r.Range)
			}
			if off > 0 {
				chunks++
			}
			if r.AcceptEncoding != acceptEncoding {
				t.Errorf("containerd 2 sent GET %s with Accept-Encoding %q, want %q", r.URL, r.AcceptEncoding, acceptEncoding)
			}
		}
		for _, r := range resps {
			if r.ContentEncoding != "" {
				t.Errorf("airlock answered %s with Content-Encoding %q: a blob or manifest must be served as stored", r.URL, r.ContentEncoding)
			}
			if strings.Contains(r.URL, "/blobs/") && (r.Status != "206 Partial Content" || r.ContentRange == "") {
				t.Errorf("airlock answered a ranged GET %s with %s, Content-Range %q; want 206 and a Content-Range", r.URL, r.Status, r.ContentRange)
			}
		}
	}
	got := eventually(t, 5*time.Second, func() (int, bool) {
		n := 0
		for _, r := range p.requests() {
			if strings.HasPrefix(r.UA, containerd2.ua) && r.Method == "GET" && strings.Contains(r.Path, "/blobs/") && r.Status == 206 {
				n++
			}
		}
		return n, n == ranged
	})
	if got != ranged {
		t.Errorf("containerd 2 sent %d ranged blob GETs, airlock answered %d of its blob GETs with 206", ranged, got)
	}
	return ranged, chunks
}

// rangeOffset parses "bytes=N-".
func rangeOffset(h string) (int64, bool) {
	s, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// eventually polls f until it reports done or timeout passes, and returns
// its last value: airlock logs a request when its handler returns, which
// can be a moment after the client stopped reading (a chunk's reader closes
// the connection once it has its bytes).
func eventually[T any](t *testing.T, timeout time.Duration, f func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, done := f()
		if done || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}
