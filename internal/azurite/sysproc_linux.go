package azurite

import "syscall"

// sysProcAttr puts Azurite in its own process group (a Ctrl-C at the
// terminal goes to its parent, which stops it in order) and has the kernel
// kill it if its parent dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
