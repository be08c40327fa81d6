package stage1

// The one-shot boot into stage 2 on a UEFI machine: the chroot's disk is laid
// out as on a UEFI PC (GPT, EFI system partition with grub for EFI on the
// removable-media path, root on p2) and boots under OVMF. Stage 1 runs there
// for a generic-amd64 (GPT) image and sets up grub's one-shot entry; the
// next boot goes firmware → EFI grub → the entry → our initramfs → stage 2,
// which verifies the image and, with NO_FLASH=TRUE, hands back to the old
// system.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// mtools runs an mtools command (mmd, mcopy) on the chroot's EFI system
// partition: this host's kernel cannot mount FAT.
func (c *chroot) mtools(args ...string) {
	c.t.Helper()
	cmd := exec.Command(args[0], append([]string{"-i", c.esp}, args[1:]...)...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// efiGrubModules are built into the EFI grub image, so that it needs nothing
// from the ESP but itself.
func efiGrubModules() []string {
	return []string{"normal", "part_gpt", "part_msdos", "ext2", "fat", "search", "search_fs_uuid", "search_label",
		"linux", "gzio", "echo", "configfile", "loadenv", "test", "serial", "terminal", "all_video", "efi_gop", "reboot", "halt"}
}

func TestVMStage1UEFI(t *testing.T) {
	if testing.Short() {
		t.Skip("two VM boots under OVMF and TCG take minutes")
	}
	t.Parallel() // the BIOS and the UEFI run overlap: each qemu uses one core
	testenv.NeedProgram(t, "qemu-system-x86_64")
	testenv.NeedProgram(t, "mcopy")
	testenv.NeedFile(t, ovmfCode, "install Debian's ovmf package (scripts/test-packages)")
	c := newChrootOn(t, "bookworm", true)
	raw, _ := genericAMD64(t)
	const image = "balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img.gz"
	staticBinary(t, c.path(chrootHome+"/balena-migrate"))
	c.write(chrootHome+"/"+image, string(gz(raw)), 0o644)
	c.write(chrootHome+"/balena-migrate.conf", "IMAGE_NAME="+image+"\n"+
		"BACKUP_DIRECTORIES=/etc/default\nBALENA_API_HOST=\nBALENA_VPN_HOST=\nMEM_MIN_FREE_S1=16M\n", 0o644)
	c.write("/usr/local/sbin/vm-init", vmInit, 0o755)
	conf := strings.Replace(string(mustRead(t, c.path("/etc/initramfs-tools/initramfs.conf"))), "MODULES=most", "MODULES=dep", 1)
	c.write("/etc/initramfs-tools/initramfs.conf", conf, 0o644)

	// grub for EFI on the removable-media path of the ESP; its modules and
	// grub.cfg live on the root partition as on an installed system.
	args := append([]string{c.dir, "grub-mkimage", "-O", "x86_64-efi", "-o", "/tmp/BOOTX64.EFI", "-p", "(hd0,gpt2)/boot/grub"}, efiGrubModules()...)
	sh(t, "chroot", args...)
	sh(t, "cp", "-r", c.path("/usr/lib/grub/x86_64-efi"), c.path("/boot/grub/"))
	sh(t, "chroot", c.dir, "grub-editenv", "/boot/grub/grubenv", "create")
	c.mtools("mmd", "::/EFI", "::/EFI/BOOT")
	c.mtools("mcopy", c.path("/tmp/BOOTX64.EFI"), "::/EFI/BOOT/BOOTX64.EFI")

	ver := filepath.Base(mustGlob(t, c.path("/lib/modules/*-amd64")))
	tmp := t.TempDir()
	kernel, initrd, vars := filepath.Join(tmp, "vmlinuz"), filepath.Join(tmp, "initrd"), filepath.Join(tmp, "OVMF_VARS.fd")
	os.WriteFile(kernel, mustRead(t, c.path("/boot/vmlinuz-"+ver)), 0o644)
	os.WriteFile(initrd, mustRead(t, c.path("/boot/initrd.img-"+ver)), 0o644)
	os.WriteFile(vars, mustRead(t, ovmfVars), 0o644)
	c.release()
	firmware := []string{"-drive", "if=pflash,format=raw,readonly=on,file=" + ovmfCode, "-drive", "if=pflash,format=raw,file=" + vars}
	drive := []string{"-drive", "file=" + c.disk + ",format=raw,if=virtio"}

	// First boot: OVMF starts the kernel directly (booted through UEFI, so
	// /sys/firmware/efi exists); stage 1 runs from the init.
	first := qemu(t, 12*time.Minute, append(append(firmware, drive...), "-kernel", kernel, "-initrd", initrd,
		"-append", "root=/dev/vda2 rw console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init")...)
	bootHas(t, "first boot", first,
		"on UEFI PC (x86_64)",
		"is for generic-amd64, which boots on this UEFI PC",
		"GPT with 5 partitions",
		"grub boots balena-migrate once on the next boot",
		"migration successful, please reboot system",
		"VM-STAGE1-EXIT=0",
	)

	// Second boot: nothing but the firmware and the disk.
	second := qemu(t, 12*time.Minute, append(firmware, drive...)...)
	bootHas(t, "second boot", second,
		"stage 2 starting",
		"NO_FLASH=TRUE: stopping before flashing",
		// softdog armed by the initramfs, taken over and disarmed by stage 2
		"(softdog) armed: the machine resets unless stage 2 takes it over within 300 s",
		"watchdog stopped after ",
		"VM-SECOND-BOOT: BOOT_IMAGE=/boot/vmlinuz-"+ver,
	)
	if strings.Contains(second, "balena-migrate] ERROR") {
		t.Fatalf("stage 2 reported an error:\n%s", tail([]byte(second), 60))
	}
	// grub's one shot: the EFI grub cleared next_entry when it used it.
	if env := readGrubenvAt(t, c.disk, 65*1<<20); !bytes.Contains(env, []byte("\nnext_entry=\n")) {
		t.Fatalf("grub did not clear next_entry: the entry would boot again:\n%s", env)
	}
	t.Logf("first boot:\n%s", balenaLines(first))
	t.Logf("second boot:\n%s", balenaLines(second))
}
