//go:build !linux

package labnode

import "syscall"

// sysProcAttr puts a daemon in its own process group. There is no
// parent-death signal here; nodes need Linux anyway (Supported).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
