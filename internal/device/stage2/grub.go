package stage2

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

// mbrCodeSize is the boot code area of an MBR; the disk signature and the
// partition table after it stay as the image wrote them.
const mbrCodeSize = 440

// grubFiles does the resin-boot side of GRUB_INSTALL, with resin-boot
// mounted: GRUB_CFG in place and, for INSTALL, grub-install from the
// initramfs.
func (r *run) grubFiles(ctx context.Context) error {
	c := r.cfg
	if c.GrubInstall == s2config.GrubNone {
		return nil
	}
	r.log.Infof("GRUB_INSTALL=%s, boot type %s", c.GrubInstall, c.GrubBootType)
	if r.files.grubCfg != "" {
		dst := filepath.Join(c.BootMntDir, "grub", "grub.cfg")
		if c.GrubBootType == s2config.BootUEFI {
			dst = filepath.Join(c.BootMntDir, "EFI", "BOOT", "grub.cfg")
		}
		if _, err := copyFile(r.files.grubCfg, dst, 0o644); err != nil {
			return fmt.Errorf("grub: %w", err)
		}
		r.log.Infof("wrote %s", dst)
	}
	if c.GrubInstall == s2config.GrubInstall {
		return r.grubInstall(ctx)
	}
	return nil
}

// installBootCode writes grub's boot.img to the MBR and core.img into the
// gap after it for GRUB_INSTALL=FLASH on a legacy BIOS; UEFI boots the EFI
// loader on resin-boot.
func (r *run) installBootCode() error {
	c := r.cfg
	if c.GrubInstall != s2config.GrubFlash {
		return nil
	}
	if c.GrubBootType == s2config.BootUEFI {
		r.log.Infof("UEFI boots the EFI binary on resin-boot; no boot.img/core.img to flash")
		return nil
	}
	return r.flashGrubImages()
}

func (r *run) flashGrubImages() error {
	boot, err := os.ReadFile(r.files.grubBoot)
	if err != nil {
		return fmt.Errorf("grub: GRUB_BOOT_IMG: %w", err)
	}
	core, err := os.ReadFile(r.files.grubCore)
	if err != nil {
		return fmt.Errorf("grub: GRUB_CORE_IMG: %w", err)
	}
	if len(boot) < mbrCodeSize {
		return fmt.Errorf("grub: GRUB_BOOT_IMG is %d bytes, expected 512", len(boot))
	}
	disk, err := os.OpenFile(r.cfg.BootDev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("grub: %w", err)
	}
	defer disk.Close()
	parts, err := blkdev.ReadTable(disk)
	if err != nil {
		return fmt.Errorf("grub: %w", err)
	}
	gap := int64(1 << 40)
	for _, p := range parts {
		gap = min(gap, p.Start)
	}
	if int64(len(core)) > gap-blkdev.SectorSize {
		return fmt.Errorf("grub: core.img (%d bytes) does not fit before the first partition at %d", len(core), gap)
	}
	if _, err := disk.WriteAt(boot[:mbrCodeSize], 0); err != nil {
		return fmt.Errorf("grub: write boot.img: %w", err)
	}
	if _, err := disk.WriteAt(core, blkdev.SectorSize); err != nil {
		return fmt.Errorf("grub: write core.img: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return fmt.Errorf("grub: sync %s: %w", r.cfg.BootDev, err)
	}
	r.log.Infof("flashed boot.img (MBR code) and core.img (%s at sector 1) to %s", humanBytes(int64(len(core))), r.cfg.BootDev)
	return nil
}

func (r *run) grubInstall(ctx context.Context) error {
	bin, err := exec.LookPath("grub-install")
	if err != nil {
		return fmt.Errorf("grub: GRUB_INSTALL=INSTALL but grub-install is not in the initramfs: %w", err)
	}
	c := r.cfg
	args := []string{"--target=i386-pc", "--boot-directory=" + c.BootMntDir, c.BootDev}
	if c.GrubBootType == s2config.BootUEFI {
		args = []string{"--target=x86_64-efi", "--efi-directory=" + c.BootMntDir,
			"--boot-directory=" + filepath.Join(c.BootMntDir, "EFI", "BOOT"), "--removable", "--no-nvram"}
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("grub: grub-install %v: %w: %s", args, err, out)
	}
	r.log.Infof("grub-install %v done", args)
	return nil
}
