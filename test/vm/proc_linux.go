package vm

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill QEMU if the process that started it dies without
// cleaning up (a test binary killed by a signal), so no emulator is left running.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
