package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// managedTarget is where the required aks-managed-mcr rule puts
// mcr.microsoft.com/* (SPEC §1), and so where nodes pull bootstrap images.
const managedTarget = "aks-managed-repository/"

// controlBootstrap is a BootstrapLister over the control module of a
// running airlock: the cluster's Kubernetes version comes from the admin
// API, the images a node of that version pulls from the MAR catalog. The
// references are local (under aks-managed-repository/), as nodes pull them,
// so no rule mapping is needed.
type controlBootstrap struct{ client *adminapi.Client }

func newControlBootstrap(server string, hc *http.Client) BootstrapLister {
	return controlBootstrap{client: adminapi.NewClient(server, hc)}
}

// BootstrapImages implements BootstrapLister.
func (b controlBootstrap) BootstrapImages(ctx context.Context, cluster string) ([]string, error) {
	var info deploy.ClusterInfo
	if err := b.client.Do(ctx, http.MethodGet, "/clusters/"+url.PathEscape(cluster), nil, nil, &info); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	refs, err := bootstrapImages(info.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	return refs, nil
}

// bootstrapImages is deploy.BootstrapImages over the MAR catalog: what a
// node of a Kubernetes version ("1.31.3") pulls at bootstrap, as local
// references under aks-managed-repository/.
func bootstrapImages(version string) ([]string, error) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return nil, fmt.Errorf("Kubernetes version %q", version)
	}
	refs, err := catalog.BootstrapSet(parts[0] + "." + parts[1])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, managedTarget+r.String())
	}
	return out, nil
}
