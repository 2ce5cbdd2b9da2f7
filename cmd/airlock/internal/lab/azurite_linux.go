package lab

import "syscall"

// dieWithParent puts Azurite in its own process group (a Ctrl-C at the
// terminal goes to the lab, which stops its replicas before Azurite) and
// has the kernel kill it if the lab dies without stopping it.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
