//go:build !linux

package bench

import "syscall"

// childAttr is nil here: there is no parent-death signal, and a bench
// killed outright leaves its children running.
func childAttr() *syscall.SysProcAttr { return nil }
