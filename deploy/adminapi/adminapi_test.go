package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/badgerstore"
	"go.uber.org/zap"
)

func newAPI(t *testing.T) http.Handler {
	t.Helper()
	store, err := badgerstore.Open("", zap.NewNop(), badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := deploy.New(context.Background(), store, deploy.Binding{Registry: "labbootstrap", Address: "127.0.0.1:5000"}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return adminapi.New(svc, zap.NewNop())
}

// newClient is a client of a new API served over HTTP until the test ends.
func newClient(t *testing.T) *adminapi.Client {
	t.Helper()
	srv := httptest.NewServer(newAPI(t))
	t.Cleanup(srv.Close)
	return adminapi.NewClient(srv.URL, srv.Client())
}

// Errors keep their kind and code across HTTP; answers are JSON.
func TestClientAndHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t)

	var reg deploy.RegistryInfo
	if err := c.Do(ctx, "POST", "/registries", nil, deploy.RegistrySpec{Name: "teamacr"}, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.ID != deploy.RegistryID("airlock", "teamacr") || reg.LoginServer != "teamacr.azurecr.io" {
		t.Fatalf("registry %+v", reg)
	}
	cases := []struct {
		method, path string
		body         any
		kind         error
		code         string
	}{
		{"POST", "/registries", deploy.RegistrySpec{Name: "teamacr"}, deploy.ErrConflict, deploy.CodeAlreadyExists},
		{"GET", "/registries/nosuchacr", nil, deploy.ErrNotFound, deploy.CodeNotFound},
		{"POST", "/registries", map[string]string{"name": "x", "sku": "Premium"}, deploy.ErrInvalid, deploy.CodeInvalidParameter},
		{"POST", "/clusters", deploy.ClusterSpec{Name: "c", NetworkIsolated: true, KubernetesVersion: "1.29"}, deploy.ErrInvalid, deploy.CodeKubernetesVersion},
		{"GET", "/nothing/here", nil, deploy.ErrNotFound, deploy.CodeNotFound},
	}
	for _, tc := range cases {
		err := c.Do(ctx, tc.method, tc.path, nil, tc.body, nil)
		var de *deploy.Error
		if !errors.Is(err, tc.kind) || !errors.As(err, &de) || de.Code != tc.code {
			t.Errorf("%s %s: %v, want %v %s", tc.method, tc.path, err, tc.kind, tc.code)
		}
	}
	var raw json.RawMessage
	if err := c.Do(ctx, "GET", "/registries", nil, nil, &raw); err != nil || !strings.HasPrefix(string(raw), "[\n  {") {
		t.Fatalf("list: %v %s", err, raw)
	}

	// The in-process client answers the same way.
	local := adminapi.Local(newAPI(t))
	if err := local.Do(ctx, "GET", "/clusters/none", nil, nil, nil); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("local client: %v", err)
	}
	if err := adminapi.NewClient("http://127.0.0.1:1", nil).Do(ctx, "GET", "/clusters", nil, nil, nil); !errors.Is(err, adminapi.ErrUnreachable) {
		t.Fatalf("closed port: %v", err)
	}
}
