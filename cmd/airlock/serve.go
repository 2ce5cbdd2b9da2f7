package main

import (
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/spf13/cobra"
)

func serveCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the registry cache",
		Long: `Run the registry cache: the OCI distribution API with ACR-style cache rules in
front of the upstream registries, /metrics, /healthz, /readyz, the pins API and
the control module's admin API (/admin/).

SIGTERM or SIGINT stops it gracefully; SIGHUP reloads rules, credential sets,
upstream endpoints, quota and pins from the file without dropping a connection.
A configuration that does not validate is refused with one line, exit code 2.
Relative paths in the file (storage.dir, tls.cert, tls.key, passwordFile) are
taken from the file's directory, not from where airlock runs.`,
		Example: `  airlock serve --config examples/airlock.yaml
  # reload the configuration file of a running server
  kill -HUP "$(pidof airlock)"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "config"); err != nil {
				return err
			}
			return server.Run(cmd.Context(), path, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML); required")
	return cmd
}
