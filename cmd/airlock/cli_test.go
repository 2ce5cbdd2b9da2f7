package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/spf13/cobra"
)

// commandPaths lists every command of the tree (hidden ones aside) as the
// arguments that name it.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if sub.Hidden {
			continue
		}
		p := append(append([]string(nil), prefix...), sub.Name())
		out = append(out, p)
		out = append(out, commandPaths(sub, p)...)
	}
	return out
}

// Every command answers --help on stdout, exit 0, with a description, its
// usage, its flags and an example.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	paths := append([][]string{nil}, commandPaths(newRoot(nil, nil, nil), nil)...)
	if len(paths) < 50 {
		t.Fatalf("only %d commands in the tree", len(paths))
	}
	for _, p := range paths {
		t.Run(strings.Join(append([]string{"airlock"}, p...), " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(p, "--help"), &stdout, &stderr)
			out := stdout.String()
			if code != 0 || stderr.Len() != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			cmd, _, err := newRoot(nil, nil, nil).Find(p)
			if err != nil {
				t.Fatal(err)
			}
			desc := cmd.Long
			if desc == "" {
				desc = cmd.Short
			}
			if cmd.Short == "" || !strings.HasPrefix(out, desc[:min(len(desc), 30)]) {
				t.Errorf("no description first:\n%s", out)
			}
			for _, want := range []string{"Usage:\n  airlock", "Examples:\n  ", "Flags:\n", "-h, --help"} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "serve-bare") {
				t.Errorf("help shows an internal flag:\n%s", out)
			}
		})
	}
}

// The flags other issues, tests and the README rely on keep their names
// and short forms.
func TestFlagContract(t *testing.T) {
	t.Parallel()
	root := newRoot(nil, nil, nil)
	for _, c := range []struct {
		cmd   string
		flags []string // name or name/shorthand
	}{
		{"serve", []string{"config"}},
		{"lab", []string{"dir", "listen", "mar-listen", "scale", "seed", "log-level"}},
		{"mar", []string{"listen", "data-listen", "catalog", "scale", "seed", "from", "cache-dir", "fault", "extra", "log-level"}},
		{"warm", []string{"list", "cluster", "pin", "config", "server", "platform", "concurrency", "insecure"}},
		{"bundle export", []string{"list", "output/o", "config", "server", "platform", "concurrency", "insecure", "direct"}},
		{"bundle import", []string{"config", "as-pushed"}},
		{"bench", []string{"scenario", "nodes", "catalog", "scale", "targets", "runs", "out", "kubernetes", "seed", "cache-dir",
			"large-size", "distproxy", "run-timeout", "cpuprofile", "log-level", "serve-bare",
			"registry", "images", "prefix", "platform", "mar-stats", "arrival", "agents", "listen", "wait-agents", "linger", "emit-k8s",
			"k8s-image", "k8s-namespace", "username", "password-env", "acr-exchange", "aad-token-env", "ca", "insecure"}},
		{"bench agent", []string{"coordinator", "name", "index", "log-level", "username", "password-env", "acr-exchange", "aad-token-env", "ca", "insecure"}},
		{"acr create", []string{"name/n", "resource-group/g", "location/l", "server", "config", "dir"}},
		{"acr cache create", []string{"registry/r", "name/n", "source-repo", "target-repo", "cred-set", "tag-ttl"}},
		{"acr cache update", []string{"registry/r", "name/n", "cred-set", "remove-cred-set"}},
		{"acr credential-set create", []string{"registry/r", "name/n", "login-server", "username", "password-env", "password-file", "password"}},
		{"acr private-endpoint create", []string{"registry/r", "name/n", "address", "scheme", "resource-group/g"}},
		{"acr dns set", []string{"name/n", "ipv4-address"}},
		{"cluster create", []string{"name/n", "resource-group/g", "location", "kubernetes-version/k", "network-isolated", "outbound-type",
			"bootstrap-artifact-source", "bootstrap-container-registry-resource-id", "network-plugin", "node-os-upgrade-channel",
			"os-type", "nodepool-name", "node-count/c", "vnet-subnet-id", "enable-extension", "extensions"}},
		{"cluster update", []string{"name/n", "outbound-type", "bootstrap-artifact-source", "bootstrap-container-registry-resource-id",
			"kubernetes-version", "node-os-upgrade-channel", "network-plugin", "enable-extension", "disable-extension"}},
		{"cluster upgrade", []string{"name/n", "node-image-only", "nodepool-name"}},
		{"cluster nodeconfig", []string{"name/n", "out", "scheme", "registry-host", "ca", "fallback-server", "certs-dir"}},
		{"cluster nodepool add", []string{"cluster-name", "name/n", "os-type", "node-count/c", "vnet-subnet-id"}},
		{"cluster reconcile", []string{"name/n"}},
	} {
		cmd, _, err := root.Find(strings.Fields(c.cmd))
		if err != nil || cmd.Name() != strings.Fields(c.cmd)[len(strings.Fields(c.cmd))-1] {
			t.Errorf("%s: %v", c.cmd, err)
			continue
		}
		for _, f := range c.flags {
			name, short, _ := strings.Cut(f, "/")
			fl := cmd.Flags().Lookup(name)
			if fl == nil || fl.Shorthand != short {
				t.Errorf("airlock %s: flag --%s (short %q) missing or changed: %+v", c.cmd, name, short, fl)
			}
		}
	}
}

// Completion scripts for bash and zsh (and fish, powershell).
func TestCompletion(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{
		"bash": "# bash completion V2 for airlock", "zsh": "#compdef airlock",
		"fish": "complete -c airlock", "powershell": "Register-ArgumentCompleter",
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"completion", shell}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), want) {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, stdout.Len(), stderr.String())
		}
	}
	// The script completes subcommands: ask cobra's completion entry point.
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"__complete", "bundle", ""}, &stdout, &bytes.Buffer{}); code != 0 ||
		!strings.Contains(stdout.String(), "export") || !strings.Contains(stdout.String(), "import") {
		t.Errorf("__complete bundle: exit %d: %s", code, stdout.String())
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &bytes.Buffer{}); code != 0 ||
		!strings.HasPrefix(stdout.String(), "airlock ") || !strings.Contains(stdout.String(), "\ngo      go1.") {
		t.Fatalf("exit %d:\n%s", code, stdout.String())
	}
	var b bytes.Buffer
	printVersion(&b, &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "d97ad8f"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}})
	if want := "airlock v1.2.3\ncommit  d97ad8f+modified (2026-01-02T03:04:05Z)\ngo      go1.26.0\n"; b.String() != want {
		t.Fatalf("version:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Usage errors exit 2, failures 1; either is one line on stderr naming the
// command and saying what to do. Without arguments airlock prints its help
// on stderr and exits 2.
func TestExitCodesAndErrors(t *testing.T) {
	t.Parallel()
	down := "http://" + upstreamtest.Unreachable(t)
	list := filepath.Join(t.TempDir(), "images.txt")
	if err := os.WriteFile(list, []byte("mcr.microsoft.com/oss/kubernetes/pause:3.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--bogus"}, 2, "airlock serve: unknown flag: --bogus (see 'airlock serve --help')"},
		{[]string{"serve"}, 2, "airlock serve: --config is required (see 'airlock serve --help')"},
		{[]string{"serve", "extra"}, 2, `airlock serve: unexpected argument "extra"`},
		{[]string{"bogus"}, 2, `airlock: unknown command "bogus" (see 'airlock --help')`},
		{[]string{"bundel"}, 2, `airlock: unknown command "bundel"; did you mean "bundle"?`},
		{[]string{"bundle", "export", "--list", "x"}, 2, "airlock bundle export: -o/--output is required"},
		{[]string{"bundle", "import", "--config", "x"}, 2, "airlock bundle import: give one bundle file"},
		{[]string{"warm", "--server", down}, 2, "airlock warm: give exactly one of --list FILE and --cluster NAME"},
		{[]string{"warm", "--list", list, "--concurrency", "0", "--server", down}, 2, "--concurrency 0: must be between 1 and 64"},
		{[]string{"lab", "--scale", "huge"}, 2, `airlock lab: --scale "huge": want small or full`},
		{[]string{"acr", "list", "--server", down}, 1, "airlock acr list: admin API unreachable"},
		{[]string{"warm", "--list", "-", "--server", down}, 2, "airlock warm: - lists no images"},
		{[]string{"warm", "--list", list, "--server", down}, 1, "airlock warm: cannot reach airlock at " + down},
		{[]string{"bundle", "export", "--list", list, "-o", "b.tar", "--server", down}, 1, "start airlock serve, or give --server URL or --config FILE"},
		{[]string{"acr", "list", "--server", down}, 1, "start airlock serve, set --server or AIRLOCK_SERVER"},
		{[]string{"completion", "tcsh"}, 2, `airlock completion: unknown command "tcsh"`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		msg := stderr.String()
		if code != c.code || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.want) {
			t.Errorf("airlock %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(c.args, " "), code, msg, c.code, c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), nil, &stdout, &stderr); code != 2 || stdout.Len() != 0 ||
		!strings.Contains(stderr.String(), "Control module (emulated AKS/ACR):\n  acr ") {
		t.Errorf("airlock without arguments: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// Single-dash long flags, which the CLI took before it moved to cobra,
// still work.
func TestSingleDashLongFlags(t *testing.T) {
	t.Parallel()
	root := newRoot(nil, nil, nil)
	for _, c := range []struct{ in, want []string }{
		{[]string{"serve", "-config", "a.yaml"}, []string{"serve", "--config", "a.yaml"}},
		{[]string{"serve", "-config=a.yaml"}, []string{"serve", "--config=a.yaml"}},
		{[]string{"bundle", "export", "-o", "b.tar", "-list", "-"}, []string{"bundle", "export", "-o", "b.tar", "--list", "-"}},
		{[]string{"mar", "-seed", "-1", "--", "-listen"}, []string{"mar", "--seed", "-1", "--", "-listen"}},
		{[]string{"acr", "show", "-n", "x", "-help"}, []string{"acr", "show", "-n", "x", "--help"}},
	} {
		if got := longFlagCompat(root, c.in); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q -> %q, want %q", c.in, got, c.want)
		}
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-config", "/nonexistent/airlock.yaml"}, &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "/nonexistent/airlock.yaml") {
		t.Errorf("serve -config: exit %d, %q", code, stderr.String())
	}
}
