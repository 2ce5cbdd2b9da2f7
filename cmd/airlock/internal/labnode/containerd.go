package labnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Containerd is a containerd daemon started by StartContainerd: its root,
// state, config and socket in its own directory, the CRI service off (only
// the content store, snapshotters and image service a pull needs). ctr 1.x
// makes the registry requests itself, and ctr 2.x hands the daemon the
// --hosts-dir it was given; either way ctr runs in the daemon's namespace
// (Ctr).
type Containerd struct {
	ns, ctrBin string
	socket     string
	version    string // the server's, as ctr version reports it
	cmd        *exec.Cmd
	done       chan struct{}
	err        error // after done
}

// StartContainerd starts a containerd and waits until ctr gets an answer
// from it (30 s at most), which must come from a daemon of c.Release. A
// configuration it cannot honour (ContainerdConfig's fields say what each
// takes) is refused before anything starts. The kernel kills the daemon if
// this process dies (on Linux); it is in its own process group, so a
// Ctrl-C at the terminal reaches this process, which stops it with Stop.
// On failure nothing runs.
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
	if err := c.check(); err != nil {
		return nil, err
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
	err := d.waitReady(ctx, 30*time.Second)
	if err == nil && !strings.HasPrefix(strings.TrimPrefix(d.version, "v"), c.Release.prefix()) {
		err = fmt.Errorf("%s is containerd %s, not %s", c.Bin, d.version, c.Release)
	}
	if err != nil {
		return nil, errors.Join(err, d.Stop(10*time.Second))
	}
	return d, nil
}

// waitReady polls `ctr version` until it answers, and records the
// server's version.
func (d *Containerd) waitReady(ctx context.Context, timeout time.Duration) error {
	reServer := regexp.MustCompile(`(?m)^Server:\s*\n\s*Version:\s*(\S+)`)
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
		out, err := exec.CommandContext(cctx, argv[0], argv[1:]...).Output()
		cancel()
		if err == nil {
			m := reServer.FindSubmatch(out)
			if m == nil {
				return fmt.Errorf("ctr version names no server version:\n%s", out)
			}
			d.version = string(m[1])
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

// Version is the daemon's version (as 1.6.20~ds1 or 2.4.2+unknown).
func (d *Containerd) Version() string { return d.version }

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
