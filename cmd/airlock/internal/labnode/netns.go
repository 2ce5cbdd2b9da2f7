// Package labnode makes emulated nodes on this machine: network namespaces
// and veth links (iproute2), and containerd daemons (1.x or 2.x) with a
// private root and the CRI service off, which only pull. The lab (airlock
// lab --nodes) and the e2e suite build their isolated nodes with it. All of
// it needs root.
package labnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// IP runs iproute2's `ip args...` and returns its stdout; the error
// carries stderr.
func IP(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.String(), fmt.Errorf("ip %s: %s", strings.Join(args, " "), msg)
	}
	return stdout.String(), nil
}

// InNetns returns argv prefixed with `ip netns exec ns` when ns is not
// empty. ip execs the command: the process started is the command itself.
func InNetns(ns string, argv ...string) []string {
	if ns == "" {
		return argv
	}
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// AddNetns creates the network namespace name, with its loopback up and
// IPv6 off (so that the IPv4 routes shown are all the routes there are).
// On failure nothing is left.
func AddNetns(ctx context.Context, name string) error {
	if _, err := IP(ctx, "netns", "add", name); err != nil {
		return err
	}
	// Best effort: a kernel without IPv6 has nothing to turn off.
	_, _ = IP(ctx, "netns", "exec", name, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
	if _, err := IP(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		return errors.Join(err, DeleteNetns(context.WithoutCancel(ctx), name))
	}
	return nil
}

// DeleteNetns deletes the network namespace name; the kernel removes its
// interfaces (and their veth peers) once no process is left in it.
func DeleteNetns(ctx context.Context, name string) error {
	_, err := IP(ctx, "netns", "del", name)
	return err
}

// Netns lists the network namespaces' names.
func Netns(ctx context.Context) ([]string, error) {
	out, err := IP(ctx, "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// NetnsName is the name of a namespace made by the process pid, under
// prefix, for role: <prefix><pid>-<role>. RemoveStale recognises it.
func NetnsName(prefix string, pid int, role string) string {
	return fmt.Sprintf("%s%d-%s", prefix, pid, role)
}

// RemoveStale deletes the namespaces named by NetnsName under prefix whose
// process is gone (a crashed earlier run), killing what still runs in
// them, and returns their names. Namespaces of running processes, and any
// other name, are left alone.
func RemoveStale(ctx context.Context, prefix string) ([]string, error) {
	names, err := Netns(ctx)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\d+)-[a-z0-9-]+$`)
	var removed []string
	var errs []error
	for _, name := range names {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() || Running(pid) {
			continue // this process's, or a run still going
		}
		if out, err := IP(ctx, "netns", "pids", name); err == nil {
			for _, p := range strings.Fields(out) {
				if n, err := strconv.Atoi(p); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		if err := DeleteNetns(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// Running reports whether pid is a live process of the same program as
// this one (its command name): not a zombie, and not another program that
// was given the pid of one that is gone.
func Running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: all we can tell
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(stat)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open || closing+2 >= len(s) {
		return true // unreadable: assume it runs, remove nothing
	}
	if state := s[closing+2]; state == 'Z' || state == 'X' {
		return false
	}
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return true
	}
	return s[open+1:closing] == strings.TrimSpace(string(self))
}

// End is one end of a veth link.
type End struct {
	NS   string // network namespace; "" is the host's
	Dev  string // interface name (15 bytes at most)
	Addr string // IPv4 address, given as a /32
}

// ipIn is `ip [-n ns] args...`.
func ipIn(ctx context.Context, ns string, args ...string) (string, error) {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return IP(ctx, args...)
}

// Link connects a and b with a veth pair whose ends are created directly in
// their namespaces (nothing appears in the host's when both are named),
// gives each end its /32 address and a route to the other end's address
// only, and brings both up. On failure nothing is left.
func Link(ctx context.Context, a, b End) error {
	args := []string{"link", "add", "name", a.Dev}
	if a.NS != "" {
		args = append(args, "netns", a.NS)
	}
	args = append(args, "type", "veth", "peer", "name", b.Dev)
	if b.NS != "" {
		args = append(args, "netns", b.NS)
	}
	if _, err := IP(ctx, args...); err != nil {
		return err
	}
	for _, e := range []struct{ end, peer End }{{a, b}, {b, a}} {
		if e.end.NS == "" {
			// The host's end: no IPv6 link-local address, only IPv4 routes.
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+e.end.Dev+"/disable_ipv6", []byte("1"), 0o644)
		}
		for _, cmd := range [][]string{
			{"addr", "add", e.end.Addr + "/32", "dev", e.end.Dev},
			{"link", "set", e.end.Dev, "up"},
			{"route", "add", e.peer.Addr + "/32", "dev", e.end.Dev, "src", e.end.Addr},
		} {
			if _, err := ipIn(ctx, e.end.NS, cmd...); err != nil {
				_, derr := ipIn(context.WithoutCancel(ctx), a.NS, "link", "del", "dev", a.Dev)
				return errors.Join(err, derr)
			}
		}
	}
	return nil
}
