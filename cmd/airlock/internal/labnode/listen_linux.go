package labnode

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` mounts the namespaces it names.
const netnsDir = "/run/netns"

// ListenIn opens a TCP listener on addr inside the network namespace ns:
// the calling thread enters ns, makes the socket and comes back, and the
// socket stays in ns, so that a server of this process answers there
// (nodes whose only route leads into ns reach it) without an address of
// the host's network. Closing the listener releases the namespace.
func ListenIn(ns, addr string) (net.Listener, error) {
	target, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in ns: it stays locked, and the runtime ends
		// it when this goroutine returns.
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("leave network namespace %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		return nil, fmt.Errorf("listen %s in network namespace %s: %w", addr, ns, lerr)
	}
	return ln, nil
}
