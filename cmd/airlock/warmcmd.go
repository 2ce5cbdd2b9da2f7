package main

import (
	"net/http"

	"github.com/airlock/airlock/cmd/airlock/internal/imagetool"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/controlcli"
	"github.com/spf13/cobra"
)

// warmCmd is `airlock warm`: pull an image list through a running airlock
// so that it is cached before anyone asks.
func warmCmd() *cobra.Command {
	var list, cluster, pin string
	var so imagetool.SourceOptions
	cmd := &cobra.Command{
		Use:   "warm (--list FILE | --cluster NAME) (--config FILE | --server URL)",
		Short: "Pull an image list through a running airlock",
		Long: `Pull every image of a list (or the bootstrap images of a cluster) through a
running airlock, so that it is cached before anyone asks: manifests first, then
each blob once. References name the upstream (mcr.microsoft.com/...); the cache
rules of --config map them to the local repositories that fetch them.

An image list has one reference per line, # comments allowed. The summary says
how much was already cached and how much airlock fetched from the upstream.`,
		Example: `  airlock warm --config airlock.yaml --list images.txt --platform linux/amd64 --concurrency 8
  # the bootstrap images of a cluster's Kubernetes version, pinned under its name
  airlock warm --server http://127.0.0.1:5000 --cluster aks1 --pin cluster/aks1
  # a list on standard input
  echo mcr.microsoft.com/oss/kubernetes/pause:3.10 | airlock warm --server http://127.0.0.1:5000 --list -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (list == "") == (cluster == "") {
				return usagef("give exactly one of --list FILE and --cluster NAME (see 'airlock warm --help')")
			}
			return imagetool.RunWarm(cmd.Context(), &so, list, cluster, pin, clusterImages, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&list, "list", "", "image list `FILE`, one reference per line (- for standard input)")
	fs.StringVar(&cluster, "cluster", "", "warm the bootstrap images of this cluster's Kubernetes version (from the server's control module)")
	fs.StringVar(&pin, "pin", "", "after warming, pin the images as `OWNER` (replacing OWNER's earlier pins) so eviction keeps them")
	so.Register(fs, false)
	return cmd
}

// clusterImages lists a cluster's bootstrap images through the control
// module of the server warm pulls through.
func clusterImages(base string, hc *http.Client) imagetool.BootstrapLister {
	return controlcli.Bootstrap{Client: adminapi.NewClient(base, hc), Images: deploy.NodeBootstrapImages}
}
