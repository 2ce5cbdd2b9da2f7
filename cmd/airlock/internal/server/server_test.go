package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
	"go.uber.org/zap"
)

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// passwordToken is an access token for scope from the token endpoint of
// the server at base (service airlock.test), for user's password.
func passwordToken(t *testing.T, client *http.Client, base, user, password, scope string) string {
	t.Helper()
	resp, err := client.PostForm(base+"/oauth2/token", url.Values{
		"grant_type": {"password"}, "username": {user}, "password": {password},
		"service": {"airlock.test"}, "scope": {scope},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token from %s: %d %v", base, resp.StatusCode, err)
	}
	return tok.AccessToken
}

// The Go API the lab uses: a server's control module creates a
// network-isolated cluster whose managed registry is this server, and
// writes the node's files pointing at its listener.
func TestServerControlGoAPI(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Listen: "127.0.0.1:0", Storage: config.Storage{Dir: t.TempDir()}, Log: config.Log{Level: "warn", Format: "json"},
		Rules: []rules.Rule{{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}}}
	if err := cfg.Validate(); err != nil { // built without Parse, as the lab does
		t.Fatal(err)
	}
	srv, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	c, err := srv.Control().CreateCluster(ctx, deploy.ClusterSpec{Name: "lab", NetworkIsolated: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.BootstrapRegistry; r == nil || r.Name != "airlockbootstrap" || !r.Served || r.Endpoint != "http://"+srv.Addr() {
		t.Fatalf("bootstrap registry %+v", c.BootstrapRegistry)
	}
	nc, err := srv.Control().NodeConfig(ctx, "lab", deploy.NodeConfigOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := deploy.HostsTOML("http", srv.Addr(), "", ""); nc.Files[0].Content != want || !strings.Contains(want, srv.Addr()+"/v2/aks-managed-repository") {
		t.Fatalf("hosts.toml:\n%s", nc.Files[0].Content)
	}
}
