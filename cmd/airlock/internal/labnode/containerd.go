package labnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Containerd is a containerd 1.x daemon started by StartContainerd: its
// root, state, config and socket in its own directory, the CRI plugin off
// (only the content store, snapshotters and image service a pull needs).
// ctr 1.x makes the registry requests itself, so a pull from a node in a
// namespace runs ctr in that namespace (Ctr).
type Containerd struct {
	ns, ctrBin string
	socket     string
	cmd        *exec.Cmd
	done       chan struct{}
	err        error // after done
}

// ContainerdConfig says where and how a containerd runs.
type ContainerdConfig struct {
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
}

// maxSocketPath is the longest path a unix socket may have (sun_path).
const maxSocketPath = 107

// config is containerd's configuration for a daemon that only pulls.
func (c ContainerdConfig) config() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(c.Dir, "opt"))
}

// StartContainerd starts a containerd and waits until ctr gets an answer
// from it (30 s at most). The kernel kills it if this process dies (on
// Linux); it is in its own process group, so a Ctrl-C at the terminal
// reaches this process, which stops it with Stop. On failure nothing runs.
func StartContainerd(ctx context.Context, c ContainerdConfig) (*Containerd, error) {
	for _, b := range []struct {
		path *string
		name string
	}{{&c.Bin, "containerd"}, {&c.Ctr, "ctr"}} {
		if *b.path != "" {
			continue
		}
		p, err := exec.LookPath(b.name)
		if err != nil {
			return nil, fmt.Errorf("%s is not on PATH: %w", b.name, err)
		}
		*b.path = p
	}
	if c.Socket == "" {
		c.Socket = filepath.Join(c.Dir, "containerd.sock")
	}
	if len(c.Socket)+len(".ttrpc") > maxSocketPath {
		return nil, fmt.Errorf("containerd socket %s: longer than %d bytes", c.Socket, maxSocketPath-len(".ttrpc"))
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(c.Dir, "config.toml")
	if err := os.WriteFile(path, []byte(c.config()), 0o600); err != nil {
		return nil, err
	}
	argv := InNetns(c.NS, c.Bin, "--config", path)
	cmd := exec.Command(argv[0], argv[1:]...)
	out := c.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	d := &Containerd{ns: c.NS, ctrBin: c.Ctr, socket: c.Socket, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	if err := d.waitReady(ctx, 30*time.Second); err != nil {
		return nil, errors.Join(err, d.Stop(10*time.Second))
	}
	return d, nil
}

// waitReady polls `ctr version` until it answers.
func (d *Containerd) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		argv := d.Ctr("version")
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		go func() { // a daemon that died answers nothing: stop asking
			select {
			case <-d.done:
				cancel()
			case <-cctx.Done():
			}
		}()
		err := exec.CommandContext(cctx, argv[0], argv[1:]...).Run()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("containerd exited: %v", d.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer within %v: %w", timeout, err)
		}
	}
}

// Socket is the daemon's gRPC socket (ctr --address).
func (d *Containerd) Socket() string { return d.socket }

// Pid is the daemon's process ID.
func (d *Containerd) Pid() int { return d.cmd.Process.Pid }

// Done is closed when the daemon has exited.
func (d *Containerd) Done() <-chan struct{} { return d.done }

// Err is how the daemon exited, once Done is closed.
func (d *Containerd) Err() error {
	<-d.done
	return d.err
}

// Ctr returns the command line that runs ctr with args against this
// daemon, in its network namespace.
func (d *Containerd) Ctr(args ...string) []string {
	return InNetns(d.ns, append([]string{d.ctrBin, "--address", d.socket}, args...)...)
}

// CtrLine is Ctr as one shell line, for a person to copy.
func (d *Containerd) CtrLine(args ...string) string {
	argv := d.Ctr(args...)
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]#;&|<>(){}") {
			argv[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(argv, " ")
}

// Stop ends the daemon: SIGTERM, then SIGKILL after timeout. It returns
// once the process is gone; an exit caused by the stop is not an error.
func (d *Containerd) Stop(timeout time.Duration) error {
	select {
	case <-d.done:
		return nil // already gone (killed, crashed): nothing to stop
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(timeout):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return fmt.Errorf("containerd (pid %d) did not stop within %v of SIGTERM: killed", d.cmd.Process.Pid, timeout)
}
