package acrauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/clocktest"
	"github.com/airlock/airlock/registry/auth"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

func hashOf(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newService(t *testing.T, keyFile string, c *clocktest.Clock) *Service {
	t.Helper()
	s, err := New(Config{
		Users:   []User{{Name: "alice", PasswordHash: hashOf(t, "pw-alice")}},
		Tokens:  []Token{{Name: "puller", PasswordHash: hashOf(t, "pw-puller"), Scopes: []Scope{{Repositories: []string{"team/*"}, Actions: []string{"pull"}}}}},
		Service: "registry.test",
		KeyFile: keyFile,
	}, zap.NewNop(), WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(authz string) *http.Request {
	r := httptest.NewRequest("GET", "http://registry.test/v2/team/app/manifests/v1", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

var pull = []auth.Access{auth.Repository("team/app", auth.ActionPull)}

func issue(t *testing.T, s *Service, user, pass, scope string) string {
	t.Helper()
	r := httptest.NewRequest("GET", "http://registry.test/oauth2/token?service=registry.test&scope="+scope, nil)
	r.SetBasicAuth(user, pass)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	i := strings.Index(body, `"access_token":"`)
	rest := body[i+len(`"access_token":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestTokensExpireAndAreBoundToKeyAndService(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	key := filepath.Join(t.TempDir(), "auth", "key.pem")
	s := newService(t, key, c)
	tok := issue(t, s, "puller", "pw-puller", "repository:team/app:pull")
	if sub, err := s.Authorize(req("Bearer "+tok), pull); err != nil || sub != "puller" {
		t.Fatalf("fresh token: %q %v", sub, err)
	}
	// The key is kept: a restarted service accepts the token.
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	s2 := newService(t, key, c)
	if _, err := s2.Authorize(req("Bearer "+tok), pull); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	// Another key, another service, expiry, and unsigned or HMAC tokens fail.
	other := newService(t, filepath.Join(t.TempDir(), "other.pem"), c)
	if _, err := other.Authorize(req("Bearer "+tok), pull); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("token from another key: %v", err)
	}
	r := req("Bearer " + tok)
	r.Host = "elsewhere.test"
	s3, _ := New(Config{Users: []User{{Name: "alice", PasswordHash: hashOf(t, "x")}}, KeyFile: key}, zap.NewNop(), WithClock(c.Now))
	if _, err := s3.Authorize(r, nil); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("token for another service: %v", err)
	}
	forged := map[string]string{}
	claims := jwt.MapClaims{"iss": issuer, "sub": "alice", "aud": "registry.test", "exp": c.Now().Add(time.Hour).Unix(), "grant_type": grantAccess,
		"access": []map[string]any{{"type": "repository", "name": "team/app", "actions": []string{"pull"}}}}
	forged["none"], _ = jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	forged["hs256"], _ = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("guess"))
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged["es256 other key"], _ = jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(k)
	for name, f := range forged {
		if _, err := s.Authorize(req("Bearer "+f), pull); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%s token accepted: %v", name, err)
		}
	}
	c.Advance(DefaultAccessTTL + time.Minute)
	if _, err := s.Authorize(req("Bearer "+tok), pull); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestBasicAndScopeMaps(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now())
	s := newService(t, filepath.Join(t.TempDir(), "key.pem"), c)
	cases := []struct {
		user, pass string
		want       []auth.Access
		err        error
	}{
		{"alice", "pw-alice", pull, nil},
		{"alice", "pw-alice", []auth.Access{auth.Repository("any/where", auth.ActionDelete), auth.Catalog}, nil},
		{"alice", "pw-alice", []auth.Access{auth.Admin}, auth.ErrDenied},
		{"alice", "nope", pull, auth.ErrUnauthenticated},
		{"nobody", "pw-alice", pull, auth.ErrUnauthenticated},
		{"puller", "pw-puller", pull, nil},
		{"puller", "pw-puller", []auth.Access{auth.Repository("team/app", auth.ActionPush)}, auth.ErrDenied},
		{"puller", "pw-puller", []auth.Access{auth.Repository("teamx/app", auth.ActionPull)}, auth.ErrDenied},
		{"puller", "pw-puller", []auth.Access{auth.Repository("team", auth.ActionPull)}, auth.ErrDenied},
		{"puller", "pw-puller", []auth.Access{auth.Catalog}, auth.ErrDenied},
	}
	for _, tc := range cases {
		for range 2 { // the second time from the verification cache
			r := req("")
			r.SetBasicAuth(tc.user, tc.pass)
			_, err := s.Authorize(r, tc.want)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Errorf("%s/%s %v: got %v, want %v", tc.user, tc.pass, tc.want, err, tc.err)
			}
		}
	}
	if _, err := s.Authorize(req(""), pull); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("anonymous without anonymous pull: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "key.pem")
	good := hashOf(t, "x")
	cases := map[string]Config{
		"plain password":   {Users: []User{{Name: "a", PasswordHash: "hunter2"}}},
		"duplicate name":   {Users: []User{{Name: "a", PasswordHash: good}}, Tokens: []Token{{Name: "a", PasswordHash: good, Scopes: []Scope{{Repositories: []string{"*"}, Actions: []string{"pull"}}}}}},
		"token no scopes":  {Tokens: []Token{{Name: "t", PasswordHash: good}}},
		"bad action":       {Tokens: []Token{{Name: "t", PasswordHash: good, Scopes: []Scope{{Repositories: []string{"*"}, Actions: []string{"write"}}}}}},
		"bad pattern":      {Tokens: []Token{{Name: "t", PasswordHash: good, Scopes: []Scope{{Repositories: []string{"Team/*"}, Actions: []string{"pull"}}}}}},
		"bad anonymous":    {AnonymousPull: []string{"a/../b"}},
		"bad name":         {Users: []User{{Name: "has space", PasswordHash: good}}},
		"reserved null id": {Users: []User{{Name: nullGUID, PasswordHash: good}}},
	}
	for name, c := range cases {
		c.KeyFile = key
		_, err := New(c, zap.NewNop())
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes the password: %v", name, err)
		}
	}
}

func TestPatterns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p, repo string
		want    bool
	}{
		{"*", "a/b", true},
		{"team/*", "team/app", true},
		{"team/*", "team/a/b", true},
		{"team/*", "team", false},
		{"team/*", "teamx/app", false},
		{"team/app", "team/app", true},
		{"team/app", "team/app/x", false},
	}
	for _, c := range cases {
		p, err := newPattern(c.p)
		if err != nil {
			t.Fatal(err)
		}
		if p.match(c.repo) != c.want {
			t.Errorf("%s ~ %s: %v", c.p, c.repo, !c.want)
		}
	}
}
