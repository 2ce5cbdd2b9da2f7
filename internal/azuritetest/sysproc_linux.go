package azuritetest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill Azurite if the test binary dies
// without running its cleanups (go test -timeout).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
