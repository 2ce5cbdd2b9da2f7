package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"go.uber.org/zap"
)

// A reload replaces the file's rules but keeps the ones the control module
// serves for its registry; a file whose rules conflict with them is refused
// and changes nothing.
func TestReloadKeepsControlRules(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	body := configtest.Serve(upstreamtest.Unreachable(t), t.TempDir(), up.URL(), "control:\n  registry: teamacr\nrules:\n  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*}\n")
	path := configtest.Write(t, body)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	base := "http://" + srv.Addr()
	for _, c := range []struct{ path, body string }{
		{"/admin/v1/registries", `{"name":"teamacr"}`},
		{"/admin/v1/registries/teamacr/cacheRules", `{"name":"dotnet","sourceRepository":"mcr.microsoft.com/dotnet/*","targetRepository":"dotnet/*"}`},
	} {
		resp, err := http.Post(base+c.path, "application/json", strings.NewReader(c.body))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %v %v", c.path, err, resp.Status)
		}
		resp.Body.Close()
	}
	names := func() string {
		var out []string
		for _, r := range srv.engine.Rules().Rules() {
			out = append(out, r.Name)
		}
		return strings.Join(out, ",")
	}
	writeFile(t, path, body+"  - {name: pause-mirror, source: mcr.microsoft.com/oss/kubernetes/pause, target: mirror/pause}\n")
	if err := srv.Reload(path); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "aks-managed-mcr,dotnet,pause-mirror" {
		t.Fatalf("rules after reload: %s", got)
	}
	writeFile(t, path, body+"  - {name: dotnet-file, source: mcr.microsoft.com/dotnet/*, target: dotnet/*}\n")
	if err := srv.Reload(path); err == nil {
		t.Fatal("a file rule overlapping the control module's was accepted")
	}
	if got := names(); got != "aks-managed-mcr,dotnet,pause-mirror" {
		t.Fatalf("rules after a refused reload: %s", got)
	}
}
