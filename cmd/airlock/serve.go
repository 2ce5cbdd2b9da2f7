package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"go.uber.org/zap"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "airlock serve: usage: airlock serve --config FILE")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "airlock serve: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(stderr, "airlock serve: %v\n", err)
		return 2
	}
	defer log.Sync()
	srv, err := newServer(cfg, log)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "airlock serve: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "airlock serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "airlock: serving on %s://%s (storage %s, %d cache rules)\n", srv.scheme, srv.Addr(), cfg.Storage.Dir, len(cfg.Rules))
	if srv.caFile != "" {
		fmt.Fprintf(stdout, "airlock: TLS CA certificate %s (hosts.toml: ca = %q)\n", srv.caFile, srv.caFile)
	}
	log.Info("serving", zap.String("addr", srv.Addr()), zap.String("storage", cfg.Storage.Dir))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // reload the configuration
	defer signal.Stop(hup)
	go srv.watchReload(ctx, *path, hup)
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "airlock serve: %v\n", err)
		return 1
	}
	return 0
}
