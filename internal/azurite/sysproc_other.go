//go:build !linux

package azurite

import "syscall"

// sysProcAttr puts Azurite in its own process group. There is no
// parent-death signal here: a parent killed outright leaves it running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
