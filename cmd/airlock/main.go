// Command airlock is a pull-through OCI registry cache with ACR-style cache
// rules, a Microsoft Artifact Registry emulator, an emulated AKS/ACR control
// module and a pull benchmark. This package holds the command tree (cobra):
// each command parses its flags and calls the package that does the work;
// together with its internal packages it is the only place that wires
// concrete implementations together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/imagetool"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code: 0 on
// success, 1 when the work failed, 2 for a usage or configuration error.
// Each error is printed once, on one line, as "airlock <command>: <message>".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

// runIO is run with its standard input.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(longFlagCompat(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var reported exitCode
	if errors.As(err, &reported) {
		return int(reported)
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
	var ue *usageError
	var ie *imagetool.UsageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ie) || errors.As(err, &ce) {
		return 2
	}
	return 1
}

// newRoot builds the whole command tree on the given standard streams (nil:
// the process's).
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "airlock",
		Short: "A pull-through OCI registry cache for clusters with no egress",
		Long: `airlock is a pull-through OCI registry cache for network-isolated clusters:
nodes pull mcr.microsoft.com/... from it, and ACR-style cache rules fetch each
missing object from the upstream once, streaming it to every waiting client
while it is verified and stored.

It also runs a MAR (mcr.microsoft.com) emulator, an emulated AKS/ACR control
module (acr, cluster), pre-warming and air-gap bundles, and a pull benchmark.`,
		Example: `  # the lab: the MAR emulator on :6000 and airlock in front of it on :5000
  airlock lab
  # the registry cache alone
  airlock serve --config examples/airlock.yaml
  # every command explains itself
  airlock warm --help`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	group(root) // without a command: help on stderr, exit 2
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A command with subcommands is used through them: its usage names
	// only "[command]".
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("%v (see '%s --help')", err, c.CommandPath())
	})
	root.AddGroup(
		&cobra.Group{ID: "run", Title: "Run:"},
		&cobra.Group{ID: "images", Title: "Images:"},
		&cobra.Group{ID: "control", Title: "Control module (emulated AKS/ACR):"},
		&cobra.Group{ID: "other", Title: "Other:"},
	)
	for _, c := range []struct {
		group string
		cmd   *cobra.Command
	}{
		{"run", serveCmd()}, {"run", labCmd()}, {"run", marCmd()},
		{"images", warmCmd()}, {"images", bundleCmd()},
		{"control", acrCmd()}, {"control", clusterCmd()},
		{"other", hashPasswordCmd()}, {"other", benchCmd()}, {"other", versionCmd()},
	} {
		c.cmd.GroupID = c.group
		root.AddCommand(c.cmd)
	}
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	describeBuiltins(root)
	return root
}

// describeBuiltins gives cobra's help and completion commands the example
// every command has.
func describeBuiltins(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  airlock help bundle export"
		case "completion":
			c.Example = `  # bash, for this shell and every new one
  source <(airlock completion bash)
  airlock completion bash > /etc/bash_completion.d/airlock
  # zsh
  airlock completion zsh > "${fpath[1]}/_airlock"`
			group(c)
			for _, sh := range c.Commands() {
				sh.Example = fmt.Sprintf("  airlock completion %s > airlock.%s", sh.Name(), sh.Name())
				sh.Args = noArgs
			}
		}
	}
}

// usageError is bad command-line input: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef formats a usage error. Its message should say what to do.
func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitCode ends a command whose failure was already reported (a summary,
// a table, help): nothing more is printed.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (see '%s --help')", args[0], cmd.CommandPath())
	}
	return nil
}

// unknownCommand is the usage error for a subcommand that does not exist.
func unknownCommand(cmd *cobra.Command, name string) error {
	hint := ""
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		hint = fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usagef("unknown command %q%s (see '%s --help')", name, hint, cmd.CommandPath())
}

// group is a command that only holds subcommands: without one it prints
// its help and exits 2.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return unknownCommand(cmd, args[0])
		}
		cmd.SetOut(cmd.ErrOrStderr())
		if err := cmd.Help(); err != nil {
			return err
		}
		return exitCode(2)
	}
	return cmd
}

// required checks that flags were given a value.
func required(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if f := cmd.Flags().Lookup(n); f == nil || f.Value.String() == "" {
			name := "--" + n
			if f != nil && f.Shorthand != "" {
				name = "-" + f.Shorthand + "/" + name
			}
			return usagef("%s is required (see '%s --help')", name, cmd.CommandPath())
		}
	}
	return nil
}

// longFlagCompat rewrites single-dash long flags (-config, which Go's flag
// package accepted and airlock took before it moved to cobra) to their
// double-dash form, for the flags of the command args name. Single-letter
// flags and anything after "--" are left alone.
func longFlagCompat(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 &&
			(name == "help" || cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}
