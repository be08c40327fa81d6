package stage1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/efiboot"
)

// What the firmware starts must be balenaOS after the flash: Secure Boot
// would refuse its unsigned loaders, and a boot loader on another disk
// would start the old system's, whose files the flash removed.

// ErrSecureBoot marks a machine whose firmware enforces Secure Boot.
var ErrSecureBoot = errors.New("UEFI Secure Boot is on")

// checkSecureBoot refuses a machine booted through UEFI whose firmware
// enforces Secure Boot: balenaOS's generic images are not signed for the
// keys such firmware trusts, so the flashed disk would not start. efivarfs
// is mounted first where the system has not (systemd does).
func (r *run) checkSecureBoot(ctx context.Context) error {
	if !r.exists("/sys/firmware/efi") {
		return nil
	}
	vars := efiboot.Vars{Dir: r.p(efiboot.DefaultDir)}
	enforced, known, err := vars.SecureBoot()
	if err == nil && !known && !r.hasEFIVars() {
		if _, merr := r.host.Run(ctx, nil, "mount", "-t", "efivarfs", "efivarfs", efiboot.DefaultDir); merr != nil {
			r.log.Warn("mount efivarfs: %v", merr)
		}
		enforced, known, err = vars.SecureBoot()
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w?: cannot read the firmware's SecureBoot variable: %w", ErrSecureBoot, err)
	case !known && !r.hasEFIVars():
		return fmt.Errorf("%w?: cannot tell: the firmware's variables are not readable (efivarfs on %s): mount it (mount -t efivarfs efivarfs %s) and try again",
			ErrSecureBoot, efiboot.DefaultDir, efiboot.DefaultDir)
	case enforced:
		return fmt.Errorf("%w: balenaOS's images are not signed for the keys this firmware trusts, so the flashed disk would not start: turn Secure Boot off in the firmware setup, then migrate", ErrSecureBoot)
	case known:
		r.log.Info("UEFI Secure Boot is off")
	default:
		r.log.Info("the firmware has no Secure Boot")
	}
	return nil
}

// hasEFIVars reports whether efivarfs shows any variable.
func (f files) hasEFIVars() bool {
	ents, _ := os.ReadDir(f.p(efiboot.DefaultDir))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			return true
		}
	}
	return false
}

// checkESP refuses, on a UEFI machine, an EFI system partition on another
// disk than the one flashed: the firmware would go on starting the old
// loader from there, and it would find its files gone. It looks at
// /boot/efi and at the load option the firmware started this boot with.
func (f files) checkESP(l BootLayout) error {
	data, err := f.read("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	mounts := parseMountinfo(string(data))
	if m, ok := mountOf(mounts, "/boot/efi"); ok && m.Point == "/boot/efi" {
		esp, err := f.findDisk(mounts, "/boot/efi")
		if err != nil {
			return err
		}
		if esp.Disk != l.Root.Disk {
			return fmt.Errorf("%w: the EFI system partition (/boot/efi, %s) is on %s, not on %s, the disk that gets flashed: the firmware would go on starting the old boot loader from %s and find its files gone; move the EFI system partition to %s first",
				ErrBootLayout, esp.Partition, esp.Disk, l.Root.Disk, esp.Disk, l.Root.Disk)
		}
	}
	vars := efiboot.Vars{Dir: f.p(efiboot.DefaultDir)}
	cur, err := vars.BootCurrent()
	if err != nil {
		return nil // no variables to look at: /boot/efi said what it could
	}
	opt, err := vars.Entry(cur)
	if err != nil {
		return nil
	}
	hd, ok := efiboot.HardDrive(opt)
	if !ok {
		return nil // started from a device path without a partition
	}
	onDisk, err := f.partitionOnDisk(l.Root.Disk, hd)
	if err != nil || onDisk {
		return err
	}
	return fmt.Errorf("%w: the firmware started this system from Boot%04X (%s), whose EFI system partition is not on %s, the disk that gets flashed: move the EFI system partition to %s and make its entry the first, then migrate",
		ErrBootLayout, cur, strings.Replace(efiboot.Describe(opt), "\t", " ", 1), l.Root.Disk, l.Root.Disk)
}

// partitionOnDisk reports whether the partition of a Hard Drive node is
// one of disk's (by GPT partition GUID, or MBR disk signature and start).
func (f files) partitionOnDisk(disk string, hd efiboot.Partition) (bool, error) {
	dev, err := os.Open(f.p(disk))
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrBootLayout, disk, err)
	}
	defer dev.Close()
	if !hd.GPT {
		mbr := make([]byte, blkdev.SectorSize)
		if _, err := dev.ReadAt(mbr, 0); err != nil {
			return false, fmt.Errorf("%w: %s: %w", ErrBootLayout, disk, err)
		}
		return bytes.Equal(mbr[440:444], hd.Signature[:4]), nil
	}
	parts, err := blkdev.ReadTable(dev)
	if err != nil {
		return false, nil // not a GPT disk: the GPT partition is elsewhere
	}
	for _, p := range parts {
		if p.GUID == hd.Signature {
			return true, nil
		}
	}
	return false, nil
}

// grubBootCode is in grub's boot.img, the code grub-install writes to the
// MBR of the disk the BIOS boots.
var grubBootCode = []byte("GRUB")

// checkGrubMBR refuses, on a BIOS machine, a disk whose MBR holds no grub
// boot code: grub was installed on another disk (debconf's
// grub-pc/install_devices), which the BIOS goes on booting after the flash,
// and whose grub finds its files gone (grub rescue>).
func (f files) checkGrubMBR(disk string) error {
	mbr := make([]byte, 440)
	dev, err := os.Open(f.p(disk))
	if err == nil {
		_, err = dev.ReadAt(mbr, 0)
		dev.Close()
	}
	if err != nil {
		return fmt.Errorf("%w: read the MBR of %s: %w", ErrBootLayout, disk, err)
	}
	if !bytes.Contains(mbr, grubBootCode) {
		return fmt.Errorf("%w: the MBR of %s holds no grub boot code: grub is installed on another disk, which the BIOS would go on starting after %s is flashed (grub rescue>); install grub on %s (grub-install %s) and boot from it, then migrate",
			ErrBootLayout, disk, disk, disk, disk)
	}
	return nil
}
