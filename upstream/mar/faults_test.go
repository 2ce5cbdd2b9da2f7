package mar

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
)

func mustParse(t *testing.T, spec string) fault.Fault {
	t.Helper()
	f, err := fault.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// largeBlob returns the data URL and bytes of the extra test image's layer.
func largeBlob(t *testing.T, s *Server, c *client) (string, []byte) {
	t.Helper()
	img := image(t, s, "test/large", "v1")
	l := img.Platforms[0].Layers[0]
	resp, _ := c.do("GET", s.URL()+"/v2/test/large/blobs/"+l.Digest.String(), nil)
	if resp.StatusCode != 307 {
		t.Fatalf("blob GET: %s", resp.Status)
	}
	b, _ := s.Catalog().Blob("test/large", l.Digest)
	rc, _ := b.Open()
	defer rc.Close()
	want, _ := io.ReadAll(rc)
	return resp.Header.Get("Location"), want
}

var large = []catalog.Extra{{Repo: "test/large", Tag: "v1", LayerSizes: []int64{256 << 10}}}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Faults: []fault.Fault{mustParse(t, "kind=manifest,method=HEAD,delay=600ms")}})
	c := newClient(t).login(s)
	for _, tc := range []struct {
		method  string
		delayed bool
	}{{"HEAD", true}, {"GET", false}} {
		t0 := time.Now()
		resp, _ := c.do(tc.method, s.URL()+"/v2/oss/kubernetes/pause/manifests/3.10", nil)
		d := time.Since(t0)
		if resp.StatusCode != 200 || (d >= 600*time.Millisecond) != tc.delayed {
			t.Errorf("%s: %s after %v (delayed: %v)", tc.method, resp.Status, d, tc.delayed)
		}
	}
}

func TestFaultBandwidth(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Extra: large, Faults: []fault.Fault{mustParse(t, "kind=blob-data,bw=256KiB")}})
	c := newClient(t).login(s)
	loc, want := largeBlob(t, s, c)
	t0 := time.Now()
	resp, body := c.do("GET", loc, nil)
	d := time.Since(t0)
	// 256 KiB + gzip overhead at 256 KiB/s: about a second.
	if resp.StatusCode != 200 || !bytes.Equal(body, want) || d < 950*time.Millisecond || d > 10*time.Second {
		t.Errorf("throttled GET: %s, %d bytes in %v", resp.Status, len(body), d)
	}
	s.Faults().Clear()
	t0 = time.Now()
	c.do("GET", loc, nil)
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("unthrottled GET took %v", d)
	}
}

func TestFaultErrorStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec       string
		want       []int
		code       string
		retryAfter string
	}{
		{"kind=manifest,status=503,rate=0.5", []int{503, 200, 503, 200}, "UNAVAILABLE", ""},
		{"kind=manifest,status=429,retry-after=7", []int{429, 429, 429}, "TOOMANYREQUESTS", "7"},
		{"kind=manifest,status=500,count=2", []int{500, 500, 200, 200}, "UNKNOWN", ""},
		{"kind=blob,status=503,repo=oss/kubernetes/*", []int{200, 200}, "", ""}, // other kind: untouched
		{"kind=manifest,repo=oss/kubernetes/kube-*,status=503", []int{200}, "", ""},
		{"kind=manifest,repo-re=pau,status=404", []int{404}, "MANIFEST_UNKNOWN", ""},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			s := start(t, Config{Faults: []fault.Fault{mustParse(t, tc.spec)}})
			c := newClient(t).login(s)
			for i, want := range tc.want {
				resp, body := c.do("GET", s.URL()+"/v2/oss/kubernetes/pause/manifests/3.10", nil)
				if resp.StatusCode != want {
					t.Fatalf("request %d: %s, want %d", i+1, resp.Status, want)
				}
				if want != 200 && (errCode(body) != tc.code || resp.Header.Get("Retry-After") != tc.retryAfter) {
					t.Errorf("request %d: %s Retry-After %q", i+1, body, resp.Header.Get("Retry-After"))
				}
			}
			var errs int64
			for _, w := range tc.want {
				if w != 200 {
					errs++
				}
			}
			if f := s.Faults().List()[0]; f.Errors != errs {
				t.Errorf("fault counters %+v, want %d errors", f, errs)
			}
		})
	}
}

func TestFaultCutOnce(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Extra: large, Faults: []fault.Fault{mustParse(t, "kind=blob-data,cut=1000,count=1")}})
	c := newClient(t).login(s)
	loc, want := largeBlob(t, s, c)
	resp, body, err := c.try("GET", loc, nil)
	if err == nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) || len(body) != 1000 || !bytes.Equal(body, want[:1000]) {
		t.Fatalf("cut GET: err %v, %d of %d bytes", err, len(body), len(want))
	}
	resp, body = c.do("GET", loc, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("second GET: %s %d bytes", resp.Status, len(body))
	}
	st := s.Stats()
	d := image(t, s, "test/large", "v1").Platforms[0].Layers[0].Digest.String()
	if got := st.Sum(Filter{Kind: KindBlobData, Digest: d}); got.Count != 2 || got.Aborted != 1 || got.Bytes != int64(1000+len(want)) {
		t.Errorf("stats %+v", got)
	}
}

func TestFaultCorrupt(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Extra: large, Faults: []fault.Fault{mustParse(t, "kind=blob-data,corrupt")}})
	c := newClient(t).login(s)
	loc, want := largeBlob(t, s, c)
	resp, body := c.do("GET", loc, nil)
	d := image(t, s, "test/large", "v1").Platforms[0].Layers[0].Digest
	got := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	if resp.StatusCode != 200 || len(body) != len(want) || resp.ContentLength != int64(len(want)) ||
		resp.Header.Get("Docker-Content-Digest") != d.String() || got == d.String() {
		t.Fatalf("corrupt GET: %s, %d bytes, header %s, body hashes to %s", resp.Status, len(body), resp.Header.Get("Docker-Content-Digest"), got)
	}
	// Manifests too: same length and digest header, different bytes.
	s.SetFaults(mustParse(t, "kind=manifest,corrupt"))
	pause := image(t, s, "oss/kubernetes/pause", "3.10")
	m, _ := s.Catalog().Resolve("oss/kubernetes/pause", "3.10")
	resp, body = c.do("GET", s.URL()+"/v2/oss/kubernetes/pause/manifests/3.10", nil)
	if len(body) != len(m.Raw) || bytes.Equal(body, m.Raw) || resp.Header.Get("Docker-Content-Digest") != pause.Digest.String() {
		t.Fatalf("corrupt manifest: %s", body)
	}
}

func TestFaultUnreachableIsReversible(t *testing.T) {
	t.Parallel()
	s := start(t, Config{})
	c := newClient(t).login(s)
	admin := newClient(t)
	resp, body := admin.do("POST", s.URL()+"/_mar/faults", nil)
	if resp.StatusCode != 400 {
		t.Fatalf("empty POST: %s %s", resp.Status, body)
	}
	req, _ := http.NewRequest("POST", s.URL()+"/_mar/faults", strings.NewReader(`["kind=any,unreachable", {"kind":"token","delay":"10ms"}]`))
	hr, err := admin.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var added []fault.Fault
	json.NewDecoder(hr.Body).Decode(&added)
	hr.Body.Close()
	if hr.StatusCode != 200 || len(added) != 2 || !added[0].Unreachable || added[0].ID == 0 {
		t.Fatalf("POST faults: %s %+v", hr.Status, added)
	}
	if _, _, err := c.try("GET", s.URL()+"/v2/", nil); err == nil {
		t.Fatal("GET /v2/ succeeded while unreachable")
	}
	// The admin API stays reachable; the fault counted the dropped request.
	resp, body = admin.do("GET", s.URL()+"/_mar/faults", nil)
	var list []fault.Fault
	if json.Unmarshal(body, &list) != nil || len(list) != 2 || list[0].Applied < 1 {
		t.Fatalf("GET faults: %s %s", resp.Status, body)
	}
	if st := s.Stats(); st.Statuses["0"] < 1 {
		t.Errorf("dropped requests not counted: %+v", st.Statuses)
	}
	resp, _ = admin.do("DELETE", fmt.Sprintf("%s/_mar/faults/%d", s.URL(), added[0].ID), nil)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE fault: %s", resp.Status)
	}
	if resp, _ := c.do("GET", s.URL()+"/v2/", nil); resp.StatusCode != 200 {
		t.Fatalf("after removing the fault: %s", resp.Status)
	}
	admin.do("DELETE", s.URL()+"/_mar/faults", nil)
	if len(s.Faults().List()) != 0 {
		t.Fatal("DELETE /_mar/faults left faults")
	}
	if resp, _ := admin.do("DELETE", s.URL()+"/_mar/faults/99", nil); resp.StatusCode != 404 {
		t.Errorf("DELETE unknown fault: %s", resp.Status)
	}
}

func TestFaultTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Faults: []fault.Fault{mustParse(t, "kind=token,status=503,count=1")}})
	c := newClient(t)
	if resp, _ := c.do("GET", s.URL()+"/oauth2/token", nil); resp.StatusCode != 503 {
		t.Fatalf("token with fault: %s", resp.Status)
	}
	c.login(s) // count used up
}

// TestCloseAbortsSlowTransfers: Close ends throttled bodies and delays in
// flight promptly and leaves no goroutines (checked by TestMain).
func TestCloseAbortsSlowTransfers(t *testing.T) {
	t.Parallel()
	s, err := New(Config{CacheDir: sharedCache, Seed: 1, Extra: large, Faults: []fault.Fault{
		mustParse(t, "kind=blob-data,bw=4KiB"), mustParse(t, "kind=manifest,delay=1m"),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := newClient(t).login(s)
	loc, _ := largeBlob(t, s, c)
	errs := make(chan error, 2)
	for _, u := range []string{loc, s.URL() + "/v2/oss/kubernetes/pause/manifests/3.10"} {
		go func() {
			_, _, err := c.try("GET", u, nil)
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("request completed despite Close")
		}
	}
}
