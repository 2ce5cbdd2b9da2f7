package imagetool

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/aks"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// warm --cluster pulls the bootstrap images of the cluster's Kubernetes
// version (from the control module and its deploy/aks table) the way its nodes
// will, and --pin keeps them from eviction under the cluster's name.
func TestWarmClusterBootstrapAndPin(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	refs, err := aks.Bootstrap("1.30")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		up.PushImage(t, r.String(), 2000, 1)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, "127.0.0.1:0", filepath.Join(dir, "s"), up.URL())
	writeFile(t, cfg, strings.Replace(readFile(t, cfg), "rules:", "control:\n  registry: labbootstrap\nrules:", 1))
	srv := serve(t, cfg)
	if _, err := srv.Control().CreateCluster(context.Background(), deploy.ClusterSpec{Name: "aks1", NetworkIsolated: true, KubernetesVersion: "1.30.3"}); err != nil {
		t.Fatal(err)
	}

	r := runWarm(t, SourceOptions{Server: srv.URL()}, "", "aks1", "cluster/aks1")
	if r.err != nil || !strings.Contains(r.out, "warmed 9/9 images") || !strings.Contains(r.out, "pinned 9 images as cluster/aks1") {
		t.Fatalf("warm --cluster: %s", r)
	}
	if n := up.Count("GET", "/manifests/"); n != len(refs) {
		t.Fatalf("upstream manifest GETs %d, want %d", n, len(refs))
	}
	resp, err := http.Get(srv.URL() + "/admin/pins")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var pins struct {
		Pins []struct{ Ref, Owner string } `json:"pins"`
	}
	if err := json.Unmarshal(b, &pins); err != nil || len(pins.Pins) != len(refs) {
		t.Fatalf("pins %s %v", b, err)
	}
	for _, p := range pins.Pins {
		if p.Owner != "cluster/aks1" || !strings.HasPrefix(p.Ref, "aks-managed-repository/") {
			t.Fatalf("pin %+v", p)
		}
	}
}
