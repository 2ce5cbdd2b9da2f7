package cluster

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func mustCred(t testing.TB, b byte) *Credential {
	t.Helper()
	c, err := NewCredential(testKey(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// received turns a client request into what a server would see.
func received(t *testing.T, out *http.Request) *http.Request {
	t.Helper()
	in := httptest.NewRequest(out.Method, out.URL.RequestURI(), nil)
	in.Header = out.Header.Clone()
	return in
}

func signed(t *testing.T, cred *Credential, method, target string, hop int, at time.Time) *http.Request {
	t.Helper()
	out, err := http.NewRequest(method, "http://10.0.0.6:5000"+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	cred.signAt(out, a, hop, at)
	return received(t, out)
}

func TestCredentialVerifies(t *testing.T) {
	t.Parallel()
	cred := mustCred(t, 1)
	const target = "/_airlock/peer/v2/library/busybox/blobs/sha256:ab%3Acd?ns=docker.io&x=1"
	p, err := cred.Verify(signed(t, cred, http.MethodGet, target, 2, time.Now()))
	if err != nil || p != (Peer{Addr: a, Hop: 2}) {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
	if _, err := NewCredential(testKey(1)[:31]); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
}

func TestCredentialRejects(t *testing.T) {
	t.Parallel()
	cred := mustCred(t, 1)
	now := time.Now()
	const target = "/_airlock/peer/v2/a/blobs/sha256:00?ns=x"
	// tampered is a request signed now, then changed by f.
	tampered := func(f func(r *http.Request)) func() *http.Request {
		return func() *http.Request {
			r := signed(t, cred, http.MethodGet, target, 1, now)
			f(r)
			return r
		}
	}
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want error
	}{
		{"unsigned", func() *http.Request { return httptest.NewRequest(http.MethodGet, target, nil) }, ErrUnsigned},
		{"no signature", tampered(func(r *http.Request) { r.Header.Del(HeaderSignature) }), ErrUnsigned},
		{"header twice", tampered(func(r *http.Request) { r.Header.Add(HeaderHop, "1") }), ErrUnsigned},
		{"other key", func() *http.Request { return signed(t, mustCred(t, 2), http.MethodGet, target, 1, now) }, ErrBadSignature},
		{"other method", tampered(func(r *http.Request) { r.Method = http.MethodDelete }), ErrBadSignature},
		{"other path", tampered(func(r *http.Request) { r.RequestURI = "/_airlock/peer/v2/b/blobs/sha256:00?ns=x" }), ErrBadSignature},
		{"other query", tampered(func(r *http.Request) { r.RequestURI = "/_airlock/peer/v2/a/blobs/sha256:00?ns=y" }), ErrBadSignature},
		{"other sender", tampered(func(r *http.Request) { r.Header.Set(HeaderPeer, b) }), ErrBadSignature},
		{"other hop", tampered(func(r *http.Request) { r.Header.Set(HeaderHop, "2") }), ErrBadSignature},
		{"other time", tampered(func(r *http.Request) { r.Header.Set(HeaderTime, "1") }), ErrBadSignature},
		{"bad scheme", tampered(func(r *http.Request) { r.Header.Set(HeaderSignature, "v2="+r.Header.Get(HeaderSignature)[3:]) }), ErrBadSignature},
		{"not base64", tampered(func(r *http.Request) { r.Header.Set(HeaderSignature, "v1=***") }), ErrBadSignature},
		{"old", func() *http.Request {
			return signed(t, cred, http.MethodGet, target, 1, now.Add(-MaxSkew-2*time.Second))
		}, ErrStale},
		{"future", func() *http.Request {
			return signed(t, cred, http.MethodGet, target, 1, now.Add(MaxSkew+2*time.Second))
		}, ErrStale},
		{"hop 0", func() *http.Request { return signed(t, cred, http.MethodGet, target, 0, now) }, ErrBadSignature},
		{"hop over the limit", func() *http.Request { return signed(t, cred, http.MethodGet, target, MaxHops+1, now) }, ErrBadSignature},
	} {
		if _, err := cred.Verify(tc.req()); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Within the skew either way is fine.
	for _, d := range []time.Duration{-MaxSkew + 2*time.Second, MaxSkew - 2*time.Second} {
		if _, err := cred.Verify(signed(t, cred, http.MethodGet, target, 1, now.Add(d))); err != nil {
			t.Errorf("signed %s from now: %v", d, err)
		}
	}
}
