package upstreamtest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock/airlock/internal/ocierr"
	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// AuthRedirect fronts a test upstream the way MAR does: an anonymous (or basic)
// token flow, and blob GETs redirected to a separate data host.
type AuthRedirect struct {
	API, Data *httptest.Server
	Up        *Upstream
	// Tokens counts tokens handed out; AuthOnData counts requests to the
	// data host that wrongly carried an Authorization header.
	Tokens, AuthOnData atomic.Int32
	user, pass         string
}

// NewAuthRedirect starts the front; user and pass, when set, are required
// at the token endpoint (a credential set).
func NewAuthRedirect(t testing.TB, user, pass string) *AuthRedirect {
	m := &AuthRedirect{Up: New(t), user: user, pass: pass}
	m.Data = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			m.AuthOnData.Add(1)
		}
		if r.URL.Query().Get("sig") != "ok" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		m.Up.Server.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(m.Data.Close)
	m.API = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.API.Close)
	return m
}

func (m *AuthRedirect) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		if m.user != "" {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(m.user+":"+m.pass))
			if r.Header.Get("Authorization") != want {
				_ = ocierr.Write(w, r, 0, errcode.ErrorCodeUnauthorized.WithMessage("bad credentials"))
				return
			}
		}
		m.Tokens.Add(1)
		fmt.Fprintf(w, `{"token":"tok-%s","access_token":"tok-%s"}`, r.URL.Query().Get("scope"), r.URL.Query().Get("scope"))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
		w.Header().Set("Www-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, m.API.URL))
		_ = ocierr.Write(w, r, 0, errcode.ErrorCodeUnauthorized.WithMessage("authentication required"))
		return
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		http.Redirect(w, r, m.Data.URL+r.URL.Path+"?sig=ok", http.StatusTemporaryRedirect)
		return
	}
	m.Up.Server.Config.Handler.ServeHTTP(w, r)
}
