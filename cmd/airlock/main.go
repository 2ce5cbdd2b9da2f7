// Command airlock is a pull-through OCI registry cache with ACR-style cache
// rules, a Microsoft Artifact Registry emulator, an emulated AKS/ACR control
// module and a pull benchmark. This is the only package that wires concrete
// implementations together.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and returns
// the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"serve":  {"run the registry cache (--config FILE)", runServe},
		"lab":    {"run the MAR emulator and airlock in front of it (make run)", runLab},
		"mar":    {"run the MAR emulator (upstream for labs, tests, bench)", runMar},
		"warm":   {"pull an image list through a running airlock (--list FILE)", warmCommand(newControlBootstrap)},
		"bundle": {"export an image list to an OCI layout tarball, or import one (air gap)", runBundle},

		"acr":           {"emulated container registries: cache rules, credential sets, private endpoints", acrCommands().run("acr")},
		"cluster":       {"emulated AKS clusters: network isolation, reconcile, node configuration", clusterCommands().run("cluster")},
		"hash-password": {"print the bcrypt hash of a password read from stdin (auth.users, auth.tokens)", runHashPassword},
		"bench":         {"pull storms against airlock, distribution and MAR, side by side", runBench},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "airlock: unknown command %q (run 'airlock help')\n", args[0])
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: airlock <command> [flags]")
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}
