package stage1

// A UEFI PC with Secure Boot on, as shipped: OVMF with Microsoft's keys
// enrolled and Secure Boot enforced starts Debian through shim (signed by
// Microsoft) and grub and the kernel (signed by Debian). balenaOS's generic
// images are not signed for those keys, so stage 1 must refuse such a
// machine in its checks, with its own class, before anything changes.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

const (
	ovmfSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfMSVars     = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

func TestVMStage1RefusesSecureBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("a VM boot under OVMF and TCG takes minutes")
	}
	t.Parallel()
	testenv.NeedProgram(t, "qemu-system-x86_64")
	testenv.NeedProgram(t, "mcopy")
	testenv.NeedFile(t, ovmfSecureCode, "install Debian's ovmf package (scripts/test-packages)")
	sb := filepath.Join(vmtest.CacheDir(), "secureboot")
	testenv.NeedFile(t, filepath.Join(sb, "shimx64.efi"), "run scripts/test-setup.d/52-secure-boot; scripts/test does")
	c := newChrootOn(t, "bookworm", true)
	readyChroot(t, c, chrootHome)
	c.write("/usr/local/sbin/vm-init", vmInit, 0o755)
	ver := c.kver
	uuid := sh(t, "blkid", "-s", "UUID", "-o", "value", c.loop+"p2")
	// The signed grub reads grub.cfg next to itself; it hands over to the
	// root's, which boots the signed kernel.
	c.write("/tmp/esp-grub.cfg", "search --no-floppy --fs-uuid --set=root "+uuid+"\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n", 0o644)
	c.write("/boot/grub/grub.cfg", "set timeout=0\nmenuentry debian {\n\tlinux /boot/vmlinuz-"+ver+
		" root=UUID="+uuid+" rw console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init no_timer_check\n\tinitrd /boot/initrd.img-"+ver+"\n}\n", 0o644)
	c.mtools("mmd", "::/EFI", "::/EFI/BOOT")
	c.mtools("mcopy", filepath.Join(sb, "shimx64.efi"), "::/EFI/BOOT/BOOTX64.EFI")
	c.mtools("mcopy", filepath.Join(sb, "grubx64.efi"), "::/EFI/BOOT/grubx64.efi")
	c.mtools("mcopy", c.path("/tmp/esp-grub.cfg"), "::/EFI/BOOT/grub.cfg")
	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	os.WriteFile(vars, mustRead(t, ovmfMSVars), 0o644)
	c.release()

	out := qemu(t, 12*time.Minute, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfSecureCode, "-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+c.disk+",format=raw,if=virtio")
	// It did boot with Secure Boot on: the kernel says so.
	if !strings.Contains(out, "Secure boot enabled") {
		t.Fatalf("the VM did not boot with Secure Boot on:\n%s", tail([]byte(out), 60))
	}
	bootHas(t, "boot", out,
		"ERROR: failed (secure_boot): UEFI Secure Boot is on: balenaOS's images are not signed for the keys this firmware trusts",
		"VM-STAGE1-EXIT=1",
	)
	t.Logf("stage 1:\n%s", balenaLines(out))
}
