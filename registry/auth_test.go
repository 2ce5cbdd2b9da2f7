package registry_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/registry/auth/acrauth"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

const (
	adminPass = "adm1n-Secret-pw"
	ciPass    = "ci-Secret-pw-42"
)

func hash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// newAuthEnv is an env with auth on: an admin user, a token that may push
// to team/* and pull ci/*, and anonymous pull on the cache namespace.
func newAuthEnv(t *testing.T, log *zap.Logger) *env {
	t.Helper()
	alog := zap.NewNop()
	if log != nil {
		alog = log
	}
	svc, err := acrauth.New(acrauth.Config{
		Users: []acrauth.User{{Name: "admin", PasswordHash: hash(t, adminPass), Admin: true}},
		Tokens: []acrauth.Token{{Name: "ci", PasswordHash: hash(t, ciPass), Scopes: []acrauth.Scope{
			{Repositories: []string{"team/*"}, Actions: []string{"pull", "push"}},
			{Repositories: []string{"ci/tools"}, Actions: []string{"pull"}},
		}}},
		AnonymousPull: []string{"aks-managed-repository/*"},
		KeyFile:       filepath.Join(t.TempDir(), "key.pem"),
	}, alog)
	if err != nil {
		t.Fatal(err)
	}
	var e *env
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(e.prom, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
	e = newEnv(t, envOpt{log: log, registry: []registry.Option{
		registry.WithAuth(svc),
		registry.WithPublicRoute("/oauth2/", "oauth2", svc.Handler()),
		registry.WithRoute("/metrics", "metrics", metrics),
	}})
	return e
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// token runs the docker token flow for scope and returns the access token.
func (e *env) token(user, pass, scope string) string {
	e.t.Helper()
	host := strings.TrimPrefix(e.srv.URL, "http://")
	q := url.Values{"service": {host}, "scope": {scope}}
	var hdr []string
	if user != "" {
		hdr = []string{"Authorization", basic(user, pass)}
	}
	resp, body := e.do("GET", "/oauth2/token?"+q.Encode(), hdr...)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		e.t.Fatalf("token for %s: %d %s", scope, resp.StatusCode, body)
	}
	return tr.AccessToken
}

// The node's first probe, GET /v2/_catalog, is refused with ACR's challenge.
func TestAuthCatalogChallenge(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	resp, body := e.do("GET", "/v2/_catalog")
	wantPrefix := `Bearer realm="http://` + host + `/oauth2/token",service="` + host + `"`
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), wantPrefix) {
		t.Fatalf("catalog: %d %q", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
	}
	var errs struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(body, &errs) != nil || errs.Errors[0].Code != "UNAUTHORIZED" || !strings.HasPrefix(errs.Errors[0].Message, "authentication required") {
		t.Fatalf("catalog body: %s", body)
	}
	resp, _ = e.do("GET", "/v2/team/app/manifests/v1")
	if got := resp.Header.Get("Www-Authenticate"); !strings.HasSuffix(got, `,scope="repository:team/app:pull"`) {
		t.Fatalf("manifest challenge %q", got)
	}
	if resp, _ := e.do("GET", "/healthz"); resp.StatusCode != 200 {
		t.Fatal("healthz must stay open")
	}
}

func TestAuthTokenFlowAndScopes(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, nil)
	// The admin pushes with Basic straight against /v2/ (docker login style).
	admin := basic("admin", adminPass)
	if resp, _ := e.do("GET", "/v2/", "Authorization", admin); resp.StatusCode != 200 {
		t.Fatalf("basic ping: %d", resp.StatusCode)
	}
	if resp, _ := e.do("GET", "/v2/", "Authorization", basic("admin", "wrong")); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp, body := e.send("POST", "/v2/ci/tools/blobs/uploads/?digest="+digestOf("tool"), []byte("tool"), "Authorization", admin)
	if resp.StatusCode != 201 {
		t.Fatalf("admin push: %d %s", resp.StatusCode, body)
	}
	// The scoped token: a bearer token for team/app push.
	tok := "Bearer " + e.token("ci", ciPass, "repository:team/app:pull,push")
	if resp, body := e.send("POST", "/v2/team/app/blobs/uploads/?digest="+digestOf("x"), []byte("x"), "Authorization", tok); resp.StatusCode != 201 {
		t.Fatalf("token push: %d %s", resp.StatusCode, body)
	}
	// The token holds no scope for ci/tools: 401 with the scope to ask for.
	resp, _ = e.do("GET", "/v2/ci/tools/blobs/"+digestOf("tool"), "Authorization", tok)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("Www-Authenticate"), `scope="repository:ci/tools:pull"`) {
		t.Fatalf("out-of-scope token: %d %v", resp.StatusCode, resp.Header)
	}
	// Asking for more than the scope map allows grants only what it allows.
	tok2 := "Bearer " + e.token("ci", ciPass, "repository:ci/tools:pull,push")
	if resp, _ := e.do("GET", "/v2/ci/tools/blobs/"+digestOf("tool"), "Authorization", tok2); resp.StatusCode != 200 {
		t.Fatalf("pull ci/tools: %d", resp.StatusCode)
	}
	if resp, _ := e.send("POST", "/v2/ci/tools/blobs/uploads/", nil, "Authorization", tok2); resp.StatusCode != 401 {
		t.Fatalf("push ci/tools with a pull-only grant: %d", resp.StatusCode)
	}
	// With Basic, the scoped token is denied outright.
	if resp, body := e.send("DELETE", "/v2/team/app/blobs/"+digestOf("x"), nil, "Authorization", basic("ci", ciPass)); resp.StatusCode != 403 || errorCode(body) != "DENIED" {
		t.Fatalf("delete without the delete action: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.do("GET", "/v2/_catalog", "Authorization", basic("ci", ciPass)); resp.StatusCode != 403 {
		t.Fatalf("catalog for a scoped token: %d", resp.StatusCode)
	}
}

func TestAuthAnonymousPullAndAdminRoutes(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, nil)
	e.up.PushImage(t, "oss/kubernetes/pause:3.10", 64, 1)
	if resp, _ := e.do("HEAD", "/v2/"+repo+"/manifests/3.10?ns=mcr.microsoft.com"); resp.StatusCode != 200 {
		t.Fatalf("anonymous pull of bootstrap content: %d", resp.StatusCode)
	}
	if resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil); resp.StatusCode != 401 {
		t.Fatalf("anonymous push: %d", resp.StatusCode)
	}
	if resp, _ := e.do("GET", "/v2/team/app/tags/list"); resp.StatusCode != 401 {
		t.Fatalf("anonymous pull outside the patterns: %d", resp.StatusCode)
	}
	// An anonymous token carries only anonymous pull.
	anon := "Bearer " + e.token("", "", "repository:"+repo+":pull repository:team/app:pull")
	if resp, _ := e.do("GET", "/v2/"+repo+"/manifests/3.10", "Authorization", anon); resp.StatusCode != 200 {
		t.Fatalf("anonymous token: %d", resp.StatusCode)
	}
	if resp, _ := e.do("GET", "/v2/team/app/tags/list", "Authorization", anon); resp.StatusCode != 401 {
		t.Fatalf("anonymous token outside the patterns: %d", resp.StatusCode)
	}
	// Metrics need an admin.
	for _, c := range []struct {
		auth   string
		status int
	}{{"", 401}, {basic("ci", ciPass), 403}, {basic("admin", adminPass), 200}} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		if resp, _ := e.do("GET", "/metrics", hdr...); resp.StatusCode != c.status {
			t.Errorf("metrics with %q: %d, want %d", c.auth, resp.StatusCode, c.status)
		}
	}
}

// docker login's OAuth flow and ACR's exchange: refresh token, then access
// tokens from it; the refresh token also works as a password.
func TestAuthRefreshTokens(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	form := url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {ciPass}, "service": {host}}
	resp, body := e.send("POST", "/oauth2/exchange", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	var rt struct {
		RefreshToken string `json:"refresh_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &rt) != nil || rt.RefreshToken == "" {
		t.Fatalf("exchange: %d %s", resp.StatusCode, body)
	}
	form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.RefreshToken}, "service": {host}, "scope": {"repository:team/app:push"}}
	resp, body = e.send("POST", "/oauth2/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	var at struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &at) != nil {
		t.Fatalf("refresh grant: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil, "Authorization", "Bearer "+at.AccessToken); resp.StatusCode != 202 {
		t.Fatalf("push with the refreshed token: %d", resp.StatusCode)
	}
	// A refresh token is not an access token, nor the reverse.
	if resp, _ := e.send("POST", "/v2/team/app/blobs/uploads/", nil, "Authorization", "Bearer "+rt.RefreshToken); resp.StatusCode != 401 {
		t.Fatalf("refresh token used as access token: %d", resp.StatusCode)
	}
	if resp, _ := e.do("GET", "/v2/team/app/tags/list", "Authorization", basic("00000000-0000-0000-0000-000000000000", rt.RefreshToken)); resp.StatusCode == 401 {
		t.Fatalf("refresh token as password (az acr login --expose-token): %d", resp.StatusCode)
	}
	form.Set("refresh_token", at.AccessToken)
	if resp, _ := e.send("POST", "/oauth2/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded"); resp.StatusCode != 401 {
		t.Fatalf("access token used as refresh token: %d", resp.StatusCode)
	}
}

func digestOf(s string) string { return digest.FromString(s).String() }
