package stage2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mount mounts dev on dir with the mount(2) syscall, creating dir.
func mount(dev, dir, fstype string, flags uintptr) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	if err := unix.Mount(dev, dir, fstype, flags, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, fstype, dir, err)
	}
	return nil
}

// unmount unmounts dir, retrying briefly while it is busy.
func unmount(dir string) error {
	var err error
	for range 10 {
		if err = unix.Unmount(dir, 0); err == nil || !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// mountedFrom lists the mount points of devices whose path starts with dev
// (the disk and its partitions), from /proc/mounts.
func mountedFrom(dev string) ([]string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	real, _ := filepath.EvalSymlinks(dev)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if strings.HasPrefix(fields[0], dev) || (real != "" && strings.HasPrefix(fields[0], real)) {
			out = append(out, fields[1])
		}
	}
	return out, sc.Err()
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes.
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}

// copyFile copies src to dst (created with perm) and syncs it.
func copyFile(src, dst string, perm os.FileMode) (int64, error) {
	return copyFileProgress(src, dst, perm, nil)
}

// progressWriter calls mark after each write.
type progressWriter struct {
	w    io.Writer
	mark func()
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.mark()
	return n, err
}

// copyFileProgress is copyFile calling mark (when set) for each MiB copied.
func copyFileProgress(src, dst string, perm os.FileMode, mark func()) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return 0, err
	}
	var w io.Writer = out
	if mark != nil {
		w = progressWriter{out, mark}
	}
	n, err := io.CopyBuffer(w, in, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return n, nil
}

// reboot syncs and restarts the machine at once, like `reboot -f`.
func reboot() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
