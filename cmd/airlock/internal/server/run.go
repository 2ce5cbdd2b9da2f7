package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/logging"
	"go.uber.org/zap"
)

// Run is airlock serve: it loads the configuration at path, serves it
// until ctx ends, and reloads it on SIGHUP. It prints where it serves on
// stdout. A configuration that does not load or validate is a
// *config.Error.
func Run(ctx context.Context, path string, stdout io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Log)
	if err != nil {
		return &config.Error{Msg: "config: log: " + err.Error()}
	}
	defer log.Sync() //nolint:errcheck // stderr
	srv, err := New(cfg, log)
	if err != nil {
		return err
	}
	storage := cfg.Storage.Dir
	if a := cfg.Storage.Azure; cfg.Storage.AzureDriver() {
		storage = fmt.Sprintf("azure container %s, spool %s", a.Container, cfg.Storage.Dir)
		if cfg.Cluster.Enabled() {
			storage += ", replica " + cfg.Cluster.Self
		}
	}
	fmt.Fprintf(stdout, "airlock: serving on %s (storage %s, %d cache rules)\n", srv.URL(), storage, len(cfg.Rules))
	if srv.caFile != "" {
		fmt.Fprintf(stdout, "airlock: TLS CA certificate %s (hosts.toml: ca = %q)\n", srv.caFile, srv.caFile)
	}
	log.Info("serving", zap.String("addr", srv.Addr()), zap.String("storage", cfg.Storage.Dir))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // reload the configuration
	defer signal.Stop(hup)
	go srv.WatchReload(ctx, path, hup)
	return srv.Serve(ctx)
}
