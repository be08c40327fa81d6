package stage2

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/efiboot"
)

// efiLoaderName is the removable-media loader of this architecture.
func efiLoaderName() string {
	switch runtime.GOARCH {
	case "arm64":
		return "BOOTAA64.EFI"
	case "386":
		return "BOOTIA32.EFI"
	case "arm":
		return "BOOTARM.EFI"
	}
	return "BOOTX64.EFI"
}

// findEFILoader returns the path (as UEFI writes it) of the EFI loader on
// the mounted resin-boot at dir, or "" when it has none. FAT looks names
// up without case.
func findEFILoader(dir string) string {
	name := efiLoaderName()
	if _, err := os.Stat(filepath.Join(dir, "EFI", "BOOT", name)); err != nil {
		return ""
	}
	return `\EFI\BOOT\` + name
}

// writeBootEntry writes a UEFI boot entry for the loader on resin-boot and
// puts it first in BootOrder, as balenaOS's own flasher does with
// efibootmgr: the old entries point at an EFI system partition that the
// flash replaced. Nothing to do on a machine that did not boot through UEFI.
func (r *run) writeBootEntry(p blkdev.Partition) error {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return nil
	}
	if r.efiLoader == "" {
		r.log.Warnf("resin-boot has no EFI loader (%s): no UEFI boot entry written", efiLoaderName())
		return nil
	}
	if err := mountEfivars(); err != nil {
		return err
	}
	part := efiboot.Partition{Number: p.Number, Start: p.Start / blkdev.SectorSize, Size: p.Length / blkdev.SectorSize, GPT: p.IsGPT()}
	if part.GPT {
		part.Signature = p.GUID
	} else {
		disk, err := os.Open(r.cfg.BootDev)
		if err != nil {
			return err
		}
		_, err = disk.ReadAt(part.Signature[:4], 440) // the MBR disk signature
		disk.Close()
		if err != nil {
			return fmt.Errorf("read the disk signature: %w", err)
		}
	}
	opt := efiboot.LoadOption("balenaOS", part, r.efiLoader)
	n, err := efiboot.Vars{Dir: efiboot.DefaultDir}.AddFirst(opt)
	if err != nil {
		return err
	}
	r.log.Infof("UEFI boot entry Boot%04X (%s) written, first in BootOrder", n, strings.Replace(efiboot.Describe(opt), "\t", " ", 1))
	return nil
}

// mountEfivars mounts efivarfs where the firmware's variables live, unless
// it is there already (the initramfs does not mount it).
func mountEfivars() error {
	if mounted, err := isMounted(efiboot.DefaultDir, "efivarfs"); err != nil || mounted {
		return err
	}
	// A module in most kernels; stage 1 puts it into the initramfs.
	exec.Command("modprobe", "efivarfs").Run()
	if err := unix.Mount("efivarfs", efiboot.DefaultDir, "efivarfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount efivarfs on %s: %w", efiboot.DefaultDir, err)
	}
	return nil
}

// isMounted reports whether a filesystem of type fstype is mounted on dir.
func isMounted(dir, fstype string) (bool, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 2 && fields[1] == dir && fields[2] == fstype {
			return true, nil
		}
	}
	return false, sc.Err()
}
