package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from and the Go version",
		Long: `Print airlock's version (its module version, "(devel)" for a build from a
source tree), the VCS commit it was built from ("+modified" when the tree had
uncommitted changes) and the Go version, from the binary's build information.`,
		Example: `  airlock version`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bi, ok := debug.ReadBuildInfo()
			if !ok {
				return fmt.Errorf("this binary carries no build information")
			}
			printVersion(cmd.OutOrStdout(), bi)
			return nil
		},
	}
}

// printVersion prints the version lines of bi.
func printVersion(w io.Writer, bi *debug.BuildInfo) {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	commit, modified, at := "unknown", false, ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "vcs.time":
			at = s.Value
		}
	}
	if modified {
		commit += "+modified"
	}
	if at != "" {
		commit += " (" + at + ")"
	}
	fmt.Fprintf(w, "airlock %s\ncommit  %s\ngo      %s\n", version, commit, bi.GoVersion)
}
