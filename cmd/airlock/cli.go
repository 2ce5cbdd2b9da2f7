package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"go.uber.org/zap"
)

// This file is the CLI side of the control module: `airlock acr` and
// `airlock cluster` turn flags into one admin API call each and print the
// JSON answer. They talk to a running `airlock serve` (--server), or with
// --config/--dir open a stopped server's state in process.

// defaultServer is where the CLI looks for a running airlock.
const defaultServer = "http://127.0.0.1:5000"

// group dispatches to named subcommands.
type group map[string]command

func (g group) run(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			w := stdout
			if len(args) == 0 {
				w = stderr
			}
			fmt.Fprintf(w, "usage: airlock %s <command> [flags]   (each command has --help)\ncommands:\n", name)
			names := make([]string, 0, len(g))
			for n := range g {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(w, "  %-17s %s\n", n, g[n].summary)
			}
			if len(args) == 0 {
				return 2
			}
			return 0
		}
		c, ok := g[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "airlock %s: unknown command %q (run 'airlock %s --help')\n", name, args[0], name)
			return 2
		}
		return c.run(ctx, args[1:], stdout, stderr)
	}
}

// call is one admin API request.
type call struct {
	method, path string
	query        url.Values
	body         any
	// print, if set, prints the answer instead of echoing its JSON.
	print func(answer json.RawMessage, stdout io.Writer) error
}

// usageError is bad command-line input: exit 2.
type usageError string

func (e usageError) Error() string { return string(e) }

func usagef(format string, a ...any) error { return usageError(fmt.Sprintf(format, a...)) }

// op is a CLI operation: setup registers its flags and returns what builds
// the call once they are parsed.
type op struct {
	summary string
	usage   string // flags synopsis
	setup   func(fs *flag.FlagSet) func() (call, error)
}

func (o op) command(name string) command {
	return command{o.summary, func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return o.run(ctx, name, args, stdout, stderr)
	}}
}

func (o op) run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", "", "URL of a running airlock (default $AIRLOCK_SERVER, else "+defaultServer+")")
	cfgPath := fs.String("config", "", "edit a stopped server's state in process, with this configuration file")
	dir := fs.String("dir", "", "edit a stopped server's state in process, in this storage directory")
	build := o.setup(fs)
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "airlock %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", "; "))
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, name, o, fs)
			return 0
		}
		return fail(2, fmt.Errorf("%v (see --help)", err))
	}
	if fs.NArg() > 0 {
		return fail(2, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0)))
	}
	c, err := build()
	if err != nil {
		return fail(2, err)
	}
	client, closeFn, err := connect(ctx, *server, *cfgPath, *dir)
	if err != nil {
		var ce *config.Error
		var ue usageError
		if errors.As(err, &ce) || errors.As(err, &ue) {
			return fail(2, err)
		}
		return fail(1, err)
	}
	defer closeFn()
	var answer json.RawMessage
	if err := client.Do(ctx, c.method, c.path, c.query, c.body, &answer); err != nil {
		if errors.Is(err, adminapi.ErrUnreachable) {
			err = fmt.Errorf("%v (start airlock serve, set --server or AIRLOCK_SERVER, or edit a stopped server's state with --config FILE or --dir DIR)", err)
		}
		if errors.Is(err, deploy.ErrInvalid) {
			return fail(2, err)
		}
		return fail(1, err)
	}
	if c.print != nil {
		if err := c.print(answer, stdout); err != nil {
			return fail(1, err)
		}
		return 0
	}
	stdout.Write(answer)
	return 0
}

func printHelp(w io.Writer, name string, o op, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: airlock %s %s\n\n%s\n\nflags:\n", name, o.usage, o.summary)
	short := map[string]string{} // long name -> its one-letter alias
	fs.VisitAll(func(f *flag.Flag) {
		if long, ok := strings.CutPrefix(f.Usage, "short for --"); ok {
			short[long] = f.Name
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "short for --") {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + strings.ToUpper(arg)
		}
		alias := ""
		if s, ok := short[f.Name]; ok {
			alias = ", -" + s
		}
		fmt.Fprintf(w, "  --%s%s%s\n      %s\n", f.Name, alias, arg, usage)
	})
}

// connect returns a client of a running server, or of the state opened in
// process when cfgPath or dir is given.
func connect(ctx context.Context, server, cfgPath, dir string) (*adminapi.Client, func(), error) {
	if cfgPath == "" && dir == "" {
		if server == "" {
			server = os.Getenv("AIRLOCK_SERVER")
		}
		if server == "" {
			server = defaultServer
		}
		if !strings.Contains(server, "://") {
			server = "http://" + server
		}
		return adminapi.NewClient(server, nil), func() {}, nil
	}
	if server != "" {
		return nil, nil, usagef("--server and --config/--dir exclude each other")
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
	return openLocal(ctx, cfg, zap.NewNop())
}

// required checks that flags were given.
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usagef("--%s is required (see --help)", pairs[i])
		}
	}
	return nil
}

// name registers --name and its short form -n.
func nameFlag(fs *flag.FlagSet, what string) *string {
	p := fs.String("name", "", what)
	fs.StringVar(p, "n", "", "short for --name")
	return p
}

// registryFlag registers --registry/-r; it accepts a name or resource ID.
func registryFlag(fs *flag.FlagSet) *string {
	p := fs.String("registry", "", "registry name or resource ID")
	fs.StringVar(p, "r", "", "short for --registry")
	return p
}

// registryName reduces a resource ID to the registry's name, for paths.
func registryName(s string) string {
	if i := strings.LastIndex(strings.TrimRight(s, "/"), "/"); i >= 0 {
		s = strings.TrimRight(s, "/")[i+1:]
	}
	return strings.ToLower(s)
}

func esc(s string) string { return url.PathEscape(s) }

// csvFlag is a repeatable (and comma-separated) string flag.
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
