package controlcli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
)

// Bootstrap lists a cluster's bootstrap images through the admin API: the
// cluster's Kubernetes version comes from the control module, the images a
// node of that version pulls from Images. The references are local (under
// aks-managed-repository/), as nodes pull them.
type Bootstrap struct {
	Client *adminapi.Client
	// Images lists what a node of a Kubernetes version ("1.31.3") pulls.
	Images func(version string) ([]string, error)
}

// BootstrapImages returns the bootstrap images of cluster. An unknown
// cluster is deploy.ErrNotFound; an unreachable server
// adminapi.ErrUnreachable.
func (b Bootstrap) BootstrapImages(ctx context.Context, cluster string) ([]string, error) {
	var info deploy.ClusterInfo
	if err := b.Client.Do(ctx, http.MethodGet, "/clusters/"+url.PathEscape(cluster), nil, nil, &info); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	refs, err := b.Images(info.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	return refs, nil
}
