//go:build !linux

package lab

import "syscall"

// dieWithParent puts Azurite in its own process group. There is no
// parent-death signal here: a lab killed outright leaves Azurite running.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
