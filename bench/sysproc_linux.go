package bench

import "syscall"

// childAttr has the kernel kill a target's child process when the bench
// dies without stopping it (SIGKILL, a crash), so that no replica or
// proxy outlives it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
