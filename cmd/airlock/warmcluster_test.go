package main

import (
	"encoding/json"
	"strings"
	"testing"

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
	a := startServe(t, serveConfig(upstreamtest.Unreachable(t), t.TempDir(), up.URL(), "control:\n  registry: labbootstrap\n"))
	a.mustCLI("cluster", "create", "--name", "aks1", "--network-isolated", "--kubernetes-version", "1.30.3")

	code, out, errOut := runCmd(t, "warm", "--cluster", "aks1", "--server", a.base, "--pin", "cluster/aks1")
	if code != 0 || !strings.Contains(out, "warmed 9/9 images") || !strings.Contains(out, "pinned 9 images as cluster/aks1") {
		t.Fatalf("warm --cluster: exit %d\n%s%s", code, out, errOut)
	}
	if n := up.Count("GET", "/manifests/"); n != len(refs) {
		t.Fatalf("upstream manifest GETs %d, want %d", n, len(refs))
	}
	_, b := a.get("/admin/pins")
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
