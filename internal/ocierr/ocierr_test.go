package ocierr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, method string
		status       int
		errs         []errcode.Error
		wantStatus   int
		wantBody     string
	}{
		{"code status", "GET", 0, []errcode.Error{errcode.ErrorCodeManifestUnknown.WithMessage("manifest unknown")}, 404,
			`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}` + "\n"},
		{"detail", "GET", 0, []errcode.Error{errcode.ErrorCodeNameInvalid.WithMessage("bad").WithDetail("x/Y")}, 400,
			`{"errors":[{"code":"NAME_INVALID","message":"bad","detail":"x/Y"}]}` + "\n"},
		{"other status", "GET", 503, []errcode.Error{errcode.ErrorCodeUnknown.WithMessage("injected fault")}, 503,
			`{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}` + "\n"},
		{"two errors", "GET", 0, []errcode.Error{errcode.ErrorCodeDenied.WithMessage("a"), errcode.ErrorCodeUnauthorized.WithMessage("b")}, 403,
			`{"errors":[{"code":"DENIED","message":"a"},{"code":"UNAUTHORIZED","message":"b"}]}` + "\n"},
		{"none", "GET", 0, nil, 500, `{"errors":[]}` + "\n"},
		{"head", "HEAD", 0, []errcode.Error{errcode.ErrorCodeBlobUnknown.WithMessage("blob unknown")}, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			if err := Write(rec, httptest.NewRequest(c.method, "/v2/x/manifests/y", nil), c.status, c.errs...); err != nil {
				t.Fatal(err)
			}
			if rec.Code != c.wantStatus || rec.Body.String() != c.wantBody || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"))
			}
			if c.method == http.MethodGet {
				var env struct{ Errors []errcode.Error }
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || len(env.Errors) != len(c.errs) {
					t.Fatalf("body does not read back: %v %+v", err, env)
				}
			}
		})
	}
}
