package labnode

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// Release is the containerd release line a daemon runs. It sets the
// configuration's format and the plugins turned off, and StartContainerd
// checks the daemon's version against it.
type Release int

const (
	// Containerd1 is containerd 1.6 or 1.7 (configuration version 2), the
	// zero value: ctr resolves and fetches itself (the client-side
	// resolver), so a pull's registry requests come from ctr.
	Containerd1 Release = iota
	// Containerd2 is containerd 2.x (configuration version 3), what AKS
	// 1.33+ nodes run: ctr hands a pull to the daemon's transfer service,
	// which makes the registry requests.
	Containerd2
)

// String is the release as "containerd 1.x" or "containerd 2.x".
func (r Release) String() string { return fmt.Sprintf("containerd %s", r.prefix()+"x") }

// prefix is what the versions of the release line start with.
func (r Release) prefix() string { return fmt.Sprintf("%d.", int(r)+1) }

// ContainerdConfig says where and how a containerd runs.
type ContainerdConfig struct {
	// Release is the daemon's release line; Bin must be of it.
	Release Release
	// Bin and Ctr are the containerd and ctr binaries; "" looks them up on
	// PATH.
	Bin, Ctr string
	// Dir holds the daemon's config, root and state; it is created.
	Dir string
	// Socket is the gRPC socket's path; "" is Dir/containerd.sock. A unix
	// socket's path has at most 107 bytes.
	Socket string
	// NS is the network namespace it runs in; "" is the host's.
	NS string
	// Output receives the daemon's stdout and stderr (nil: discarded).
	Output io.Writer
	// Imports are configuration files the daemon imports, as a node's own
	// snippets (for containerd 2, the config_path snippet nodeconfig
	// writes as containerd/config-path-v3.toml).
	Imports []string
	// LogLevel is the daemon's log level (trace, debug, info, warn, error);
	// "" is warn. At debug, containerd 2's transfer service logs every
	// registry request and response.
	LogLevel string
	// LogJSON has the daemon write its log as JSON lines.
	LogJSON bool
	// Fetch tunes containerd 2's transfer service; Containerd1 refuses
	// anything but the zero value.
	Fetch FetchConfig
}

// FetchConfig tunes how containerd 2's transfer service fetches layers.
// The zero value keeps containerd's defaults.
type FetchConfig struct {
	// ChunkSize, when positive, turns on parallel layer fetch: a layer
	// bigger than ChunkSize bytes is fetched as ranged requests of
	// ChunkSize bytes, several at once (concurrent_layer_fetch_buffer).
	ChunkSize int64
	// MaxConcurrentDownloads, when positive, bounds the layers (with
	// ChunkSize, the ranges of a layer) fetched at once
	// (max_concurrent_downloads).
	MaxConcurrentDownloads int
}

// maxSocketPath is the longest path a unix socket may have (sun_path).
const maxSocketPath = 107

// check reports a configuration StartContainerd cannot honour.
func (c ContainerdConfig) check() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("containerd needs a directory (Dir)"))
	}
	if c.Release != Containerd1 && c.Release != Containerd2 {
		errs = append(errs, fmt.Errorf("unknown containerd release %d", int(c.Release)))
	}
	if c.Fetch != (FetchConfig{}) && c.Release != Containerd2 {
		errs = append(errs, fmt.Errorf("fetch settings %+v are for containerd 2's transfer service, not %s", c.Fetch, c.Release))
	}
	if c.Fetch.ChunkSize < 0 || c.Fetch.MaxConcurrentDownloads < 0 {
		errs = append(errs, fmt.Errorf("fetch settings %+v: negative", c.Fetch))
	}
	if levels := []string{"trace", "debug", "info", "warn", "error"}; c.LogLevel != "" && !slices.Contains(levels, c.LogLevel) {
		errs = append(errs, fmt.Errorf("containerd log level %q: not one of %s", c.LogLevel, strings.Join(levels, ", ")))
	}
	for _, p := range append([]string{c.Dir, c.Socket}, c.Imports...) {
		if !utf8.ValidString(p) {
			errs = append(errs, fmt.Errorf("path %q: not UTF-8 (a containerd configuration is)", p))
		}
	}
	if len(c.Socket)+len(".ttrpc") > maxSocketPath {
		errs = append(errs, fmt.Errorf("containerd socket %s: longer than %d bytes", c.Socket, maxSocketPath-len(".ttrpc")))
	}
	return errors.Join(errs...)
}

// disabledPlugins are the plugins off in a daemon of r: in every release
// the CRI service, the snapshotters that need what this machine may lack,
// and tracing; in containerd 2 also the CRI runtime, sandbox controller
// and NRI (no runc, no CNI, no socket outside Dir). containerd 2's CRI
// images plugin stays on, so that an imported config_path snippet is
// applied and exported (ctr plugins ls).
func (r Release) disabledPlugins() []string {
	off := []string{
		"io.containerd.grpc.v1.cri",
		"io.containerd.snapshotter.v1.btrfs",
		"io.containerd.snapshotter.v1.zfs",
		"io.containerd.snapshotter.v1.devmapper",
		"io.containerd.snapshotter.v1.aufs",
		"io.containerd.tracing.processor.v1.otlp",
		"io.containerd.internal.v1.tracing",
	}
	if r == Containerd2 {
		off = append(off,
			"io.containerd.cri.v1.runtime",
			"io.containerd.podsandbox.controller.v1.podsandbox",
			"io.containerd.nri.v1.nri")
	}
	return off
}

// config is containerd's configuration for a daemon that only pulls:
// version 2 for containerd 1.x, 3 for 2.x, with root, state, sockets and
// opt directory under Dir. Socket must be set.
func (c ContainerdConfig) config() string {
	var b strings.Builder
	version := 2
	if c.Release == Containerd2 {
		version = 3
	}
	fmt.Fprintf(&b, "version = %d\nroot = %s\nstate = %s\n", version,
		tomlString(filepath.Join(c.Dir, "root")), tomlString(filepath.Join(c.Dir, "state")))
	if len(c.Imports) > 0 {
		fmt.Fprintf(&b, "imports = %s\n", tomlList(c.Imports))
	}
	b.WriteString("disabled_plugins = [\n")
	for _, p := range c.Release.disabledPlugins() {
		fmt.Fprintf(&b, "  %s,\n", tomlString(p))
	}
	level := c.LogLevel
	if level == "" {
		level = "warn"
	}
	fmt.Fprintf(&b, "]\n\n[grpc]\n  address = %s\n\n[ttrpc]\n  address = %s\n\n[debug]\n  level = %s\n",
		tomlString(c.Socket), tomlString(c.Socket+".ttrpc"), tomlString(level))
	if c.LogJSON {
		b.WriteString("  format = \"json\"\n")
	}
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %s\n", tomlString(filepath.Join(c.Dir, "opt")))
	if f := c.Fetch; f != (FetchConfig{}) {
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.transfer.v1.local\"]\n")
		if f.MaxConcurrentDownloads > 0 {
			fmt.Fprintf(&b, "  max_concurrent_downloads = %d\n", f.MaxConcurrentDownloads)
		}
		if f.ChunkSize > 0 {
			fmt.Fprintf(&b, "  concurrent_layer_fetch_buffer = %d\n", f.ChunkSize)
		}
	}
	return b.String()
}

// tomlString is s as a TOML basic string. s must be valid UTF-8 (check).
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlList is ss as a TOML array of strings.
func tomlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
