package stage1

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ScheduleReboot starts a detached `sleep N; reboot` (command is "reboot"
// on a device) in its own session, so that it outlives this process and the
// SSH session that started it.
func ScheduleReboot(seconds int, command string) error {
	cmd := exec.Command("/bin/sh", "-c", "PATH="+systemPath+"; sleep "+strconv.Itoa(seconds)+"; "+command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("could not schedule the reboot (%w): reboot the system yourself", err)
	}
	return cmd.Process.Release()
}

// Lock makes sure only one stage 1 runs at a time on this device. The lock
// goes with the process; release closes it early.
func Lock(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another balena-migrate is running (%s is locked): wait for it to finish", path)
	}
	return func() { f.Close() }, nil
}
