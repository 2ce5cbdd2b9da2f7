package fault

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/internal/leaktest"
	"github.com/airlock/airlock/internal/units"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func ptr(n int64) *int64 { return &n }

func TestParse(t *testing.T) {
	t.Parallel()
	d := "sha256:" + string(bytes.Repeat([]byte("a"), 64))
	for _, tc := range []struct {
		spec string
		want Fault
	}{
		{"kind=blob-data,cut=1000,count=1", Fault{Kind: KindBlobData, Cut: ptr(1000), Count: 1}},
		{"kind=manifest,status=429,retry-after=2", Fault{Kind: KindManifest, Status: 429, ErrorRate: 1, RetryAfter: 2}},
		{"rate=0.5", Fault{Kind: KindAny, ErrorRate: 0.5, Status: 503}},
		{"kind=any,unreachable", Fault{Kind: KindAny, Unreachable: true}},
		{"kind=blob-data,bw=1MiB/s,method=get", Fault{Kind: KindBlobData, Bandwidth: 1 << 20, Method: "GET"}},
		{"corrupt=true,digest=" + d, Fault{Kind: KindAny, Corrupt: true, Digest: d}},
		{"delay=1.5s,repo=oss/kubernetes/*,repo-re=^oss/", Fault{Kind: KindAny, Delay: units.Duration(1500 * time.Millisecond), Repo: "oss/kubernetes/*", RepoRegexp: "^oss/"}},
		{"cut=0", Fault{Kind: KindAny, Cut: ptr(0)}},
	} {
		got, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(tc.want)
		if !bytes.Equal(gj, wj) {
			t.Errorf("Parse(%q) = %s, want %s", tc.spec, gj, wj)
		}
		again, err := Parse(got.String())
		aj, _ := json.Marshal(again)
		if err != nil || !bytes.Equal(aj, gj) {
			t.Errorf("round trip of %q via %q: %s, %v", tc.spec, got.String(), aj, err)
		}
	}
	for _, bad := range []string{"", "kind=blob", "kind=nope,corrupt", "rate=2", "status=200", "status=503,foo=1",
		"delay=soon", "cut=-1", "digest=nope,corrupt", "repo=[,corrupt", "repo-re=(,corrupt", "unreachable=maybe"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	var f Fault
	if err := json.Unmarshal([]byte(`{"kind":"blob","delay":"250ms","cut":0}`), &f); err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil || time.Duration(f.Delay) != 250*time.Millisecond || f.Cut == nil || *f.Cut != 0 {
		t.Fatalf("%+v %v", f, err)
	}
	if err := json.Unmarshal([]byte(`{"delay":"x"}`), &f); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestEvaluateMatch(t *testing.T) {
	t.Parallel()
	s, err := NewSet(
		Fault{Kind: KindManifest, Method: "GET", Repo: "oss/kubernetes/*", Delay: units.Duration(time.Second)},
		Fault{Kind: KindBlobData, Digest: "sha256:" + string(bytes.Repeat([]byte("b"), 64)), Corrupt: true},
		Fault{RepoRegexp: "cilium", Bandwidth: 100},
		Fault{RepoRegexp: "cilium", Bandwidth: 50, Cut: ptr(10)},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  Request
		want []int
	}{
		{Request{Method: "GET", Kind: KindManifest, Repo: "oss/kubernetes/pause"}, []int{1}},
		{Request{Method: "HEAD", Kind: KindManifest, Repo: "oss/kubernetes/pause"}, nil},
		{Request{Method: "GET", Kind: KindManifest, Repo: "oss/kubernetes/x/y"}, nil},
		{Request{Method: "GET", Kind: KindBlobData, Digest: "sha256:" + string(bytes.Repeat([]byte("b"), 64))}, []int{2}},
		{Request{Method: "GET", Kind: KindBlobData, Digest: "sha256:" + string(bytes.Repeat([]byte("c"), 64))}, nil},
		{Request{Method: "GET", Kind: KindBlob, Repo: "containernetworking/cilium/cilium"}, []int{3, 4}},
	} {
		e := s.Evaluate(tc.req)
		if !slices.Equal(e.IDs, tc.want) {
			t.Errorf("Evaluate(%+v) ids %v, want %v", tc.req, e.IDs, tc.want)
		}
	}
	e := s.Evaluate(Request{Kind: KindBlob, Repo: "cilium"})
	if e.Bandwidth != 50 || e.Cut != 10 || e.Corrupt || e.Status != 0 || !e.Body() {
		t.Errorf("merged effects %+v", e)
	}
	if !s.Remove(4) || s.Remove(4) || len(s.List()) != 3 {
		t.Error("Remove")
	}
	s.Clear()
	if e := s.Evaluate(Request{Kind: KindBlob, Repo: "cilium"}); !e.None() || e.Body() {
		t.Errorf("after Clear: %+v", e)
	}
}

func TestErrorRateAndCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    Fault
		want string // x = error, . = ok, per request
	}{
		{Fault{Status: 500}, "xxxxxxxx"},
		{Fault{ErrorRate: 0.5, Status: 429}, "x.x.x.x."},
		{Fault{ErrorRate: 0.25}, "x...x...x..."},
		{Fault{ErrorRate: 0.1}, "x.........x........."},
		{Fault{Status: 503, Count: 2}, "xx......"},
		{Fault{ErrorRate: 0.5, Count: 3}, "x.x....."},
	} {
		s, err := NewSet(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for range tc.want {
			e := s.Evaluate(Request{Kind: KindBlob})
			if e.Status != 0 {
				got = append(got, 'x')
			} else {
				got = append(got, '.')
			}
		}
		if string(got) != tc.want {
			t.Errorf("%s: %s, want %s", tc.f.String(), got, tc.want)
		}
		f := s.List()[0]
		wantApplied := int64(len(tc.want))
		if f.Count > 0 {
			wantApplied = f.Count
		}
		if f.Applied != wantApplied || f.Errors != int64(bytes.Count(got, []byte("x"))) {
			t.Errorf("%s: applied %d errors %d", tc.f.String(), f.Applied, f.Errors)
		}
	}
}

func TestReplaceAllOrNothing(t *testing.T) {
	t.Parallel()
	s, _ := NewSet(Fault{Corrupt: true})
	if _, err := s.Replace(Fault{Corrupt: true}, Fault{Kind: "bogus", Corrupt: true}); err == nil {
		t.Fatal("invalid Replace accepted")
	}
	if l := s.List(); len(l) != 1 || l[0].ID != 1 {
		t.Fatalf("failed Replace changed the set: %+v", l)
	}
	if _, err := s.Add(Fault{Corrupt: true}, Fault{}); err == nil || len(s.List()) != 1 {
		t.Fatalf("invalid Add: %v, %d faults", err, len(s.List()))
	}
}

func TestBodyWriterCorrupt(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte{0x11}, 200<<10)
	rec := httptest.NewRecorder()
	w := Effects{Cut: -1, Corrupt: true}.BodyWriter(rec, nil)
	w.Write(body[:1000])
	w.Write(body[1000:])
	got := rec.Body.Bytes()
	var flipped []int
	for i := range got {
		if got[i] != body[i] {
			flipped = append(flipped, i)
		}
	}
	if !slices.Equal(flipped, []int{0, 64 << 10, 128 << 10, 192 << 10}) {
		t.Errorf("flipped offsets %v", flipped)
	}
}

func TestBodyWriterBandwidth(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := Effects{Cut: -1, Bandwidth: 10 << 10}.BodyWriter(rec, nil)
		start := time.Now()
		w.Write(make([]byte, 30<<10))
		if d := time.Since(start); d < 3*time.Second || d > 3100*time.Millisecond {
			t.Errorf("30 KiB at 10 KiB/s took %v", d)
		}
		if rec.Body.Len() != 30<<10 {
			t.Errorf("wrote %d", rec.Body.Len())
		}
		done := make(chan struct{})
		w = Effects{Cut: -1, Bandwidth: 1 << 10}.BodyWriter(httptest.NewRecorder(), done)
		go func() {
			time.Sleep(time.Second)
			close(done)
		}()
		start = time.Now()
		if n, err := w.Write(make([]byte, 1<<20)); !errors.Is(err, ErrAborted) || time.Since(start) != time.Second || n > 2<<10 {
			t.Errorf("aborted throttled write: %d bytes, %v after %v", n, err, time.Since(start))
		}
	})
}

func TestBodyWriterCut(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	w := Effects{Cut: 1500}.BodyWriter(rec, nil)
	w.Write(make([]byte, 1000))
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want ErrAbortHandler", r)
			}
		}()
		w.Write(make([]byte, 1000))
	}()
	if rec.Body.Len() != 1500 {
		t.Errorf("wrote %d bytes before the cut", rec.Body.Len())
	}
	if w := (Effects{Cut: -1}).BodyWriter(rec, nil); w != http.ResponseWriter(rec) {
		t.Error("no body effects should not wrap")
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Sleep(t.Context(), 2*time.Second); err != nil || time.Since(start) != 2*time.Second {
			t.Errorf("Sleep: %v after %v", err, time.Since(start))
		}
	})
}
