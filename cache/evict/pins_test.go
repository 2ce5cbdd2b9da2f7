package evict_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlock/airlock/cache/evict"
)

// TestPinsAPIErrors: the pins API answers bad requests with OCI error JSON.
func TestPinsAPIErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, evict.Policy{})
	h := e.col.PinsHandler()
	cases := []struct {
		method, body string
		status       int
		code, msg    string
	}{
		{"POST", `{"refs":`, 400, "UNKNOWN", "body: unexpected EOF"},
		{"POST", `{"refs":["a:1"],"ownr":"x"}`, 400, "UNKNOWN", `body: json: unknown field "ownr"`},
		{"POST", `{"refs":[]}`, 400, "UNKNOWN", "refs is empty"},
		{"POST", `{"refs":["aks-managed-repository/pause"]}`, 400, "NAME_INVALID", `reference "aks-managed-repository/pause" needs a :tag or an @digest`},
		{"DELETE", `{"refs":["Bad/Name:1"]}`, 400, "NAME_INVALID", `"Bad/Name" is not a valid repository name`},
		{"PUT", `{}`, 405, "UNSUPPORTED", "method PUT"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, "/admin/pins", strings.NewReader(c.body)))
		var env struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || rec.Code != c.status || len(env.Errors) != 1 ||
			env.Errors[0].Code != c.code || !strings.Contains(env.Errors[0].Message, c.msg) {
			t.Errorf("%s %s: %d %s; want %d %s %q", c.method, c.body, rec.Code, rec.Body.String(), c.status, c.code, c.msg)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.body, ct)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/admin/pins", nil))
	if rec.Header().Get("Allow") != "GET, POST, DELETE" {
		t.Errorf("405 without Allow: %v", rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/admin/pins", strings.NewReader(`{"refs":["aks-managed-repository/pause:3.10"],"owner":"c1"}`)))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("pin: %d %s", rec.Code, rec.Body.String())
	}
}
