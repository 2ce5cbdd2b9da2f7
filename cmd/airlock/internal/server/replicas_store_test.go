package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// aloneOnAzure is a replica without cluster: on az's container "alone",
// in front of up.
func aloneOnAzure(t *testing.T, az *azuritetest.Server, up *upstreamtest.Upstream) *config.Config {
	azCfg := azuretest.Config(az, "alone")
	return &config.Config{
		Listen:    "127.0.0.1:0",
		Storage:   config.Storage{Dir: t.TempDir(), Driver: config.DriverAzure, Azure: &azCfg},
		Upstreams: []config.Upstream{{Host: "mcr.microsoft.com", Endpoint: up.URL()}},
		Rules:     []rules.Rule{{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: localRepo + "*"}},
		Log:       config.Log{Level: "warn", Format: "json"},
	}
}

// status sends method url and returns the status and, for an OCI error
// body, its first code.
func status(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Errors []struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&body)
	code := ""
	if len(body.Errors) > 0 {
		code = body.Errors[0].Code
	}
	return resp.StatusCode, code
}

// A replica starts before its storage answers, auth on (its signing key
// is in the storage): /readyz, the registry API and the token endpoint
// answer 503 (never 404, never 401) until it does, then it serves and
// issues tokens.
func TestReplicaReadyOnceStoreAnswers(t *testing.T) {
	t.Parallel()
	az := azuritetest.Start(t)
	az.Stop()
	up := upstreamtest.New(t)
	cfg := aloneOnAzure(t, az, up)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = &config.Auth{Users: []config.AuthUser{{Name: "alice", PasswordHash: string(hash)}}, AnonymousPull: []string{localRepo + "*"}}
	r := runReplica(t, "alone", cfg, nil, az.HTTPClient)
	base := "http://" + r.srv.Addr()
	polltest.Until(t, 30*time.Second, "the replica says it waits for the storage", func() bool {
		return strings.Contains(r.srv.ops.notReady(), "waiting for the storage")
	})
	for _, path := range []string{"/readyz", "/v2/", "/v2/" + localRepo + "team/app/manifests/v1", "/oauth2/token?scope=repository:team/app:pull"} {
		if code, oci := status(t, http.MethodGet, base+path); code != http.StatusServiceUnavailable || (path != "/readyz" && oci != "UNAVAILABLE") {
			t.Errorf("GET %s before the storage answers: %d %s", path, code, oci)
		}
	}
	az.Restart(t)
	r.waitReady(t)
	up.PushImage(t, "team/app:v1", 10<<10, 1)
	pull(t, base, localRepo+"team/app", "v1")
	if code, _ := status(t, http.MethodGet, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz once ready: %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/oauth2/token?scope=repository:team/app:pull", nil)
	req.SetBasicAuth("alice", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token once ready: %d", resp.StatusCode)
	}
}

// A replica that loses its storage answers 503 UNAVAILABLE on every API
// path, for content it had served and content it never saw, never a 404;
// once the storage is back it serves again.
func TestReplicaStoreLost(t *testing.T) {
	t.Parallel()
	az := azuritetest.Start(t)
	up := upstreamtest.New(t)
	r := runReplica(t, "alone", aloneOnAzure(t, az, up), nil, az.HTTPClient)
	r.waitReady(t)
	base := "http://" + r.srv.Addr()
	up.PushImage(t, "team/app:v1", 10<<10, 1)
	md := pull(t, base, localRepo+"team/app", "v1")
	var m struct {
		Layers []struct{ Digest digest.Digest }
	}
	_, body, _ := get(t, base+"/v2/"+localRepo+"team/app/manifests/v1")
	json.Unmarshal(body, &m)
	cold := digest.FromString("never seen")

	az.Stop()
	polltest.Until(t, 30*time.Second, "the replica finds its storage gone", func() bool {
		code, _ := status(t, http.MethodGet, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	app := "/v2/" + localRepo + "team/app"
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v2/"},
		{http.MethodGet, "/v2/_catalog"},
		{http.MethodGet, app + "/tags/list"},
		{http.MethodGet, app + "/manifests/v1"},
		{http.MethodHead, app + "/manifests/v1"},
		{http.MethodGet, app + "/manifests/" + md.String()},
		{http.MethodGet, app + "/manifests/v2"},
		{http.MethodGet, app + "/blobs/" + m.Layers[0].Digest.String()},
		{http.MethodHead, app + "/blobs/" + m.Layers[0].Digest.String()},
		{http.MethodGet, app + "/blobs/" + cold.String()},
		{http.MethodGet, app + "/referrers/" + md.String()},
		{http.MethodGet, "/v2/pushed/app/manifests/v1"},
		{http.MethodPost, "/v2/pushed/app/blobs/uploads/"},
	} {
		code, oci := status(t, c.method, base+c.path)
		if code != http.StatusServiceUnavailable || (c.method != http.MethodHead && oci != "UNAVAILABLE") {
			t.Errorf("%s %s with the storage gone: %d %s, want 503 UNAVAILABLE", c.method, c.path, code, oci)
		}
	}

	az.Restart(t)
	polltest.Until(t, 30*time.Second, "the replica is ready again", func() bool {
		code, _ := status(t, http.MethodGet, base+"/readyz")
		return code == http.StatusOK
	})
	if got := pull(t, base, localRepo+"team/app", "v1"); got != md {
		t.Fatalf("after the outage: %s, was %s", got, md)
	}
}
