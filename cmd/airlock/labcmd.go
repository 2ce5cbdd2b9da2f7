package main

import (
	"github.com/airlock/airlock/cmd/airlock/internal/lab"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
)

func labCmd() *cobra.Command {
	var o lab.Options
	var scale, level string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run the MAR emulator and airlock in front of it (make run)",
		Long: `Start the whole product on this machine, in one process: the MAR emulator
(upstream, mcr.microsoft.com) and airlock serving the aks-managed-mcr cache
rule in front of it, as the AKS-managed registry of a network-isolated cluster
"lab". Prints the registry address, a containerd hosts.toml and commands to
pull through it. State stays in --dir; Ctrl-C stops everything cleanly.

With --nodes N (as root, with containerd on PATH) it also starts N emulated
AKS nodes of the cluster: containerd daemons configured with the hosts.toml
the control module writes, each in its own network namespace whose only
route is airlock, and prints the command that pulls on each. They stop
with the lab. Without root or containerd it says what is missing and runs
without nodes.

With --replicas N (2 to 5) it runs N airlock replicas in one cluster, on
--listen's port and the next ones, sharing a storage account emulated by
Azurite (run from bin/tools/azurite, installed by
scripts/install-tools.sh azurite; its data in --dir/azurite): each blob is
fetched from the emulator once for all of them.`,
		Example: `  airlock lab
  # 647 MiB of full-size layers, generated once into ./data/mar-catalog
  airlock lab --dir ./data --scale full
  # other ports
  airlock lab --listen 127.0.0.1:5050 --mar-listen 127.0.0.1:6060
  # two emulated AKS nodes (root, containerd): make run NODES=2
  sudo bin/airlock lab --nodes 2
  # three replicas on Azurite, on ports 5000, 5001 and 5002: make run REPLICAS=3
  airlock lab --replicas 3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Scale = catalog.Scale(scale)
			if o.Scale != catalog.ScaleSmall && o.Scale != catalog.ScaleFull {
				return usagef("--scale %q: want small or full", scale)
			}
			lvl, err := zapcore.ParseLevel(level)
			if err != nil {
				return usagef("--log-level: %v", err)
			}
			o.LogLevel = lvl
			if o.Nodes < 0 || o.Nodes > lab.MaxNodes {
				return usagef("--nodes %d: want 0 to %d", o.Nodes, lab.MaxNodes)
			}
			if o.Replicas < 1 || o.Replicas > lab.MaxReplicas {
				return usagef("--replicas %d: want 1 to %d", o.Replicas, lab.MaxReplicas)
			}
			return lab.Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Dir, "dir", "./data", "state `directory` (airlock store, control state, generated catalog, node config)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:5000", "airlock registry `address`")
	fs.StringVar(&o.MarListen, "mar-listen", "127.0.0.1:6000", "MAR emulator `address`")
	fs.StringVar(&scale, "scale", string(catalog.ScaleSmall), "catalog layer sizes: small or full")
	fs.Uint64Var(&o.Seed, "seed", 1, "catalog content seed")
	fs.StringVar(&level, "log-level", "warn", "debug, info, warn or error")
	fs.IntVar(&o.Nodes, "nodes", 0, "emulated AKS nodes: containerd daemons, each in its own network namespace (root, containerd)")
	fs.IntVar(&o.Replicas, "replicas", 1, "airlock replicas in one cluster on Azurite, on --listen's port and the next ones (scripts/install-tools.sh azurite)")
	return cmd
}
