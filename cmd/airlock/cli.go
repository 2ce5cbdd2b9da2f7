package main

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/imagetool"
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/controlcli"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// This file is the CLI side of the control module: `airlock acr` and
// `airlock cluster` turn flags into one admin API call each and print the
// JSON answer. They talk to a running `airlock serve` (--server), or with
// --config/--dir open a stopped server's state in process.

// defaultServer is where the CLI looks for a running airlock.
const defaultServer = imagetool.DefaultServer

func acrCmd() *cobra.Command     { return controlCommand(controlcli.ACR()) }
func clusterCmd() *cobra.Command { return controlCommand(controlcli.Cluster()) }

// controlCommand turns a control CLI command into a cobra command: a group,
// or one admin API call sent to a running server (--server) or to a
// stopped server's state opened in process (--config, --dir).
func controlCommand(c controlcli.Command) *cobra.Command {
	use := c.Name
	if c.Args != "" {
		use += " " + c.Args
	}
	cmd := &cobra.Command{Use: use, Short: c.Short, Long: c.Long, Example: c.Example}
	if c.Setup == nil {
		group(cmd)
		for _, sub := range c.Sub {
			cmd.AddCommand(controlCommand(sub))
		}
		return cmd
	}
	if cmd.Long == "" {
		cmd.Long = c.Short + "."
	}
	fs := cmd.Flags()
	build := c.Setup(fs)
	server := fs.String("server", "", "`URL` of a running airlock (default $AIRLOCK_SERVER, else "+defaultServer+")")
	cfgPath := fs.String("config", "", "edit a stopped server's state in process, with this configuration `FILE`")
	dir := fs.String("dir", "", "edit a stopped server's state in process, in this storage `DIR`")
	cmd.Args = noArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		call, err := build()
		if err != nil {
			return asUsage(err)
		}
		client, closeFn, err := connect(cmd.Context(), *server, *cfgPath, *dir)
		if err != nil {
			return err
		}
		defer closeFn()
		return asUsage(controlcli.Do(cmd.Context(), client, call, cmd.OutOrStdout()))
	}
	return cmd
}

// asUsage makes the control CLI's usage errors exit 2.
func asUsage(err error) error {
	var ue *controlcli.UsageError
	if errors.As(err, &ue) {
		return &usageError{err.Error()}
	}
	return err
}

// connect returns a client of a running server, or of the state opened in
// process when cfgPath or dir is given.
func connect(ctx context.Context, serverURL, cfgPath, dir string) (*adminapi.Client, func(), error) {
	if cfgPath == "" && dir == "" {
		if serverURL == "" {
			serverURL = os.Getenv("AIRLOCK_SERVER")
		}
		if serverURL == "" {
			serverURL = defaultServer
		}
		if !strings.Contains(serverURL, "://") {
			serverURL = "http://" + serverURL
		}
		return adminapi.NewClient(serverURL, nil), func() {}, nil
	}
	if serverURL != "" {
		return nil, nil, usagef("--serverURL and --config/--dir exclude each other")
	}
	var cfg *config.Config
	var err error
	if cfgPath != "" {
		cfg, err = config.Load(cfgPath)
	} else {
		cfg, err = config.Parse(nil)
	}
	if err != nil {
		return nil, nil, err
	}
	if dir != "" {
		cfg.Storage.Dir = dir
	}
	return server.OpenLocal(ctx, cfg, zap.NewNop())
}
