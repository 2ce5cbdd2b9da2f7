package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
)

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
	refs, err := server.BootstrapImages(info.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	return refs, nil
}
