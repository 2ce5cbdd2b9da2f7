package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
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
A configuration that does not validate is refused with one line, exit code 2.`,
		Example: `  airlock serve --config examples/airlock.yaml
  # reload the configuration file of a running server
  kill -HUP "$(pidof airlock)"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "config"); err != nil {
				return err
			}
			return runServe(cmd.Context(), path, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML); required")
	return cmd
}

// runServe serves the configuration at path until ctx ends.
func runServe(ctx context.Context, path string, stdout io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return &config.Error{Msg: "config: log: " + err.Error()}
	}
	defer log.Sync() //nolint:errcheck // stderr
	srv, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "airlock: serving on %s://%s (storage %s, %d cache rules)\n", srv.scheme, srv.Addr(), cfg.Storage.Dir, len(cfg.Rules))
	if srv.caFile != "" {
		fmt.Fprintf(stdout, "airlock: TLS CA certificate %s (hosts.toml: ca = %q)\n", srv.caFile, srv.caFile)
	}
	log.Info("serving", zap.String("addr", srv.Addr()), zap.String("storage", cfg.Storage.Dir))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // reload the configuration
	defer signal.Stop(hup)
	go srv.watchReload(ctx, path, hup)
	return srv.Serve(ctx)
}
