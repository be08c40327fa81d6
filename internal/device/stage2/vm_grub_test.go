package stage2_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// GRUB_INSTALL=FLASH with grub's real boot.img and a core.img made by
// grub-mkimage: after stage 2 the disk boots through the PC BIOS into grub,
// which reads grub.cfg from resin-boot.
func TestVMStage2GrubFlashBootsGrub(t *testing.T) {
	t.Parallel()
	const marker = "GRUB-READ-RESIN-BOOT"
	fx := newVMFixture(t, false, func(fx *vmFixture) {
		var err error
		if fx.bootImg, err = os.ReadFile("/usr/lib/grub/i386-pc/boot.img"); err != nil {
			t.Fatalf("grub-pc-bin: %v", err)
		}
		core := filepath.Join(fx.dir, "core.img")
		out, err := exec.Command("grub-mkimage", "-O", "i386-pc", "-o", core, "-p", "(hd0,msdos1)/grub",
			"biosdisk", "part_msdos", "fat", "normal", "echo", "serial", "terminal", "halt").CombinedOutput()
		if err != nil {
			t.Fatalf("grub-mkimage: %v %s", err, out)
		}
		fx.coreImg, _ = os.ReadFile(core)
		fx.grubCfg = []byte("serial --unit=0 --speed=115200\nterminal_output serial\necho " + marker + "\nhalt\n")
	})
	fx.cfg.GrubInstall, fx.cfg.GrubBootType = s2config.GrubFlash, s2config.BootLegacy
	fx.cfg.GrubCfg, fx.cfg.GrubBootImg, fx.cfg.GrubCoreImg = "grub.cfg", "boot.img", "core.img"
	if res := fx.boot(t); res.ExitCode != 0 {
		t.Fatalf("stage 2 exit code %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	res, err := vmtest.Boot(context.Background(), vmtest.VM{Disks: []string{fx.disk}, Memory: 256, Timeout: 2 * time.Minute})
	if !strings.Contains(res.Console, marker) {
		t.Fatalf("grub did not run resin-boot's grub.cfg (err %v)\nconsole:\n%s", err, res.Console)
	}
	t.Logf("BIOS boot into grub took %s", res.Duration.Round(time.Millisecond))
}

// GRUB_INSTALL=FLASH on UEFI places grub.cfg where the EFI grub on
// resin-boot reads it and leaves the MBR and the gap as the image has them.
func TestVMStage2GrubFlashUEFIPlacesConfigOnly(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false)
	fx.cfg.GrubInstall, fx.cfg.GrubBootType = s2config.GrubFlash, s2config.BootUEFI
	fx.cfg.GrubCfg, fx.cfg.GrubBootImg, fx.cfg.GrubCoreImg = "grub.cfg", "boot.img", "core.img"
	if res := fx.boot(t); res.ExitCode != 0 {
		t.Fatalf("stage 2 exit code %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	boot := fx.image.Parts[0]
	got, err := testimg.MReadFile(fx.disk, boot.Start, "EFI/BOOT/grub.cfg")
	if err != nil || !bytes.Equal(got, fx.grubCfg) {
		t.Errorf("resin-boot/EFI/BOOT/grub.cfg = %q, %v", got, err)
	}
	disk, _ := os.ReadFile(fx.disk)
	img, _ := os.ReadFile(fx.image.Path)
	if !bytes.Equal(disk[:boot.Start], img[:boot.Start]) {
		t.Error("MBR or the gap before resin-boot changed on UEFI")
	}
}
