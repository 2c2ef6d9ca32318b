package journal

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill journalctl when relaygate dies (a
// kill -9 too): otherwise it would follow the journal with nobody reading
// until its next write failed.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
