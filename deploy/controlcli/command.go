// Package controlcli is the control module's command line (airlock acr,
// airlock cluster, in the style of az acr and az aks): each command is
// described as data, its flags turn into one admin API call, and the
// answer is printed. It talks to the control module only through
// deploy/adminapi; the command tree and how a client is reached (a running
// server, or a stopped server's state opened in process) are the caller's.
package controlcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/spf13/pflag"
)

// Command is a command of the control CLI: a group of subcommands (Sub)
// or one admin API call (Setup).
type Command struct {
	Name    string // the command's name, e.g. "create"
	Args    string // synopsis of its flags, e.g. "--name NAME [--location REGION]"
	Short   string // one line
	Long    string // more, optional
	Example string
	// Setup registers the command's flags and returns what builds the call
	// once they are parsed; nil for a group.
	Setup func(fs *pflag.FlagSet) func() (Call, error)
	Sub   []Command
}

// Call is one admin API request.
type Call struct {
	Method, Path string
	Query        url.Values
	Body         any
	// Print, if set, prints the answer instead of echoing its JSON.
	Print func(answer json.RawMessage, stdout io.Writer) error
}

// UsageError is bad command-line input.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErrorf(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// Do sends c with client and prints the answer on stdout. An answer the
// control module refused as invalid is a UsageError; an unreachable server
// says how to reach one.
func Do(ctx context.Context, client *adminapi.Client, c Call, stdout io.Writer) error {
	var answer json.RawMessage
	if err := client.Do(ctx, c.Method, c.Path, c.Query, c.Body, &answer); err != nil {
		switch {
		case errors.Is(err, adminapi.ErrUnreachable):
			return fmt.Errorf("%w (start airlock serve, set --server or AIRLOCK_SERVER, or edit a stopped server's state with --config FILE or --dir DIR)", err)
		case errors.Is(err, deploy.ErrInvalid):
			return &UsageError{err.Error()}
		}
		return err
	}
	if c.Print != nil {
		return c.Print(answer, stdout)
	}
	_, err := stdout.Write(answer)
	return err
}

// requiredFlags checks that flags were given: pairs of name and value.
func requiredFlags(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usageErrorf("--%s is required (see --help)", pairs[i])
		}
	}
	return nil
}

// byName completes c as one call: method on path of the required --name
// (what is the flag's help).
func byName(c Command, what, method string, path func(name string) string) Command {
	c.Setup = func(fs *pflag.FlagSet) func() (Call, error) {
		name := nameFlag(fs, what)
		return func() (Call, error) {
			return Call{Method: method, Path: path(*name)}, requiredFlags("name", *name)
		}
	}
	return c
}

// fixed completes c as one call without flags: method on path.
func fixed(c Command, method, path string) Command {
	c.Setup = func(*pflag.FlagSet) func() (Call, error) {
		return func() (Call, error) { return Call{Method: method, Path: path}, nil }
	}
	return c
}

// inRegistry completes c as one call on what a registry holds: method on
// path of the required --registry and, unless what is "", the required
// --name (what is the flag's help; path then gets "" for the name).
func inRegistry(c Command, what, method string, path func(reg, name string) string) Command {
	c.Setup = func(fs *pflag.FlagSet) func() (Call, error) {
		reg, name := registryFlag(fs), new(string)
		if what != "" {
			name = nameFlag(fs, what)
		}
		return func() (Call, error) {
			required := []string{"registry", *reg}
			if what != "" {
				required = append(required, "name", *name)
			}
			return Call{Method: method, Path: path(*reg, *name)}, requiredFlags(required...)
		}
	}
	return c
}

// registryPath is the admin API path of the registry named (or with the
// resource ID) s; clusterPath that of the cluster named s.
func registryPath(s string) string { return "/registries/" + esc(registryName(s)) }

func clusterPath(s string) string { return "/clusters/" + esc(s) }

// nameFlag registers --name and its short form -n.
func nameFlag(fs *pflag.FlagSet, what string) *string {
	return fs.StringP("name", "n", "", what)
}

// registryFlag registers --registry/-r; it accepts a name or resource ID.
func registryFlag(fs *pflag.FlagSet) *string {
	return fs.StringP("registry", "r", "", "registry name or resource ID")
}

// registryName reduces a resource ID to the registry's name, for paths.
func registryName(s string) string {
	if i := strings.LastIndex(strings.TrimRight(s, "/"), "/"); i >= 0 {
		s = strings.TrimRight(s, "/")[i+1:]
	}
	return strings.ToLower(s)
}

func esc(s string) string { return url.PathEscape(s) }

// csvFlag is a repeatable (and comma-separated) string flag; several
// flags may share one.
type csvFlag []string

func (l *csvFlag) String() string { return strings.Join(*l, ",") }

func (l *csvFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// Type implements pflag.Value.
func (l *csvFlag) Type() string { return "strings" }
