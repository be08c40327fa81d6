package stage1

import (
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
)

// ScheduleReboot starts a detached `sleep N; reboot` that outlives this
// process and the SSH session that started it.
func ScheduleReboot(seconds int) error {
	cmd := exec.Command("/bin/sh", "-c", "PATH="+systemPath+"; sleep "+strconv.Itoa(seconds)+"; reboot")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("could not schedule the reboot (%w): reboot the system yourself", err)
	}
	return cmd.Process.Release()
}
