//go:build !linux

package azuritetest

import "os/exec"

// setDeathSignal does nothing where the kernel has no parent-death signal;
// the test's cleanup stops Azurite.
func setDeathSignal(cmd *exec.Cmd) {}
