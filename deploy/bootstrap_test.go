package deploy_test

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/aks"
)

// The control module's own table (deploy/aks) says what a cluster's nodes
// pull: it is pinned with no Bootstrap given, listed by nodeconfig, and a
// version it lacks is said so rather than pinned as nothing in silence.
func TestBootstrapSetFromTable(t *testing.T) {
	t.Parallel()
	p := &pinner{pins: map[string][]string{}}
	e := newEnv(t, func(b *deploy.Binding) { b.Pins = p })
	ctx := context.Background()
	spec := isolated("aks1")
	spec.KubernetesVersion = "1.30.7"
	if c := must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, spec)); len(c.Warnings) != 0 {
		t.Fatalf("warnings %v", c.Warnings)
	}
	refs := must[[]aks.Ref](t)(aks.Bootstrap("1.30"))
	var want, images []string
	for _, r := range refs {
		want = append(want, "aks-managed-repository/"+r.String())
		images = append(images, r.Image())
	}
	sort.Strings(want)
	if got := p.of("cluster/aks1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("pins of cluster/aks1:\n%v\nwant\n%v", got, want)
	}
	nc := must[*deploy.NodeConfig](t)(e.svc.NodeConfig(ctx, "aks1", deploy.NodeConfigOptions{}))
	var list string
	for _, f := range nc.Files {
		if f.Path == deploy.BootstrapImagesPath {
			list = f.Content
		}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if !slices.Equal(lines, images) || !strings.HasPrefix(list, "# what a node of cluster aks1 (Kubernetes 1.30.7) pulls at bootstrap\n") {
		t.Fatalf("%s:\n%s", deploy.BootstrapImagesPath, list)
	}

	// 1.33 passes the feature's limitation (1.30 or later) but the table
	// has no set for it.
	spec = isolated("aks2")
	spec.KubernetesVersion = "1.33.0"
	c := must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, spec))
	const unknown = "Kubernetes 1.33.0: no AKS bootstrap set for this Kubernetes version (supported: 1.30, 1.31, 1.32): " +
		"the images nodes of cluster aks2 pull at bootstrap are not known, so not pinned or listed"
	if !slices.Contains(c.Warnings, unknown) {
		t.Fatalf("warnings %q", c.Warnings)
	}
	nc = must[*deploy.NodeConfig](t)(e.svc.NodeConfig(ctx, "aks2", deploy.NodeConfigOptions{}))
	if !slices.Contains(nc.Warnings, unknown) {
		t.Fatalf("nodeconfig warnings %q", nc.Warnings)
	}
	for _, f := range nc.Files {
		if f.Path == deploy.BootstrapImagesPath {
			t.Fatalf("image list written for an unknown version:\n%s", f.Content)
		}
	}
	if got := p.of("cluster/aks2"); got != nil {
		t.Fatalf("pins of cluster/aks2: %v", got)
	}
}

// The table covers what the control module accepts by default and holds
// no version the feature's limitations refuse.
func TestTableMatchesLimitations(t *testing.T) {
	t.Parallel()
	if _, err := aks.Lookup(deploy.DefaultKubernetesVersion); err != nil {
		t.Fatalf("default Kubernetes version: %v", err)
	}
	for _, v := range aks.Versions() {
		minor, err := strconv.Atoi(strings.TrimPrefix(v, "1."))
		if err != nil || minor < deploy.MinKubernetesMinor {
			t.Errorf("table version %s: network isolated clusters need 1.%d or later", v, deploy.MinKubernetesMinor)
		}
		imgs := must[[]string](t)(deploy.NodeBootstrapImages(v + ".0"))
		if len(imgs) == 0 || !strings.HasPrefix(imgs[0], deploy.MirrorRepository+"/") {
			t.Errorf("%s: %v", v, imgs)
		}
	}
}
