package pifirmware

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// debianConfig is what raspi-firmware's hook writes on an arm64 Pi 3, with
// the line stage 1 adds.
const debianConfig = `# Do not modify this file!
arm_64bit=1

enable_uart=1
upstream_kernel=1

kernel=vmlinuz-6.1.0-50-arm64
#balena-migrate# initramfs initrd.img-6.1.0-50-arm64
initramfs initrd.img-6.1.0-50-arm64

[pi4]
kernel=vmlinuz-pi4-only
[none]
device_tree=never.dtb

[all]
initramfs balena-migrate-initramfs-6.1.0-50-arm64 followkernel
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         Settings
		err          bool
	}{
		{"Debian with stage 1's line", debianConfig, Settings{ARM64: true, Kernel: "vmlinuz-6.1.0-50-arm64",
			Initramfs: "balena-migrate-initramfs-6.1.0-50-arm64", Cmdline: "cmdline.txt", Upstream: true}, false},
		{"empty: the defaults", "", Settings{Cmdline: "cmdline.txt"}, false},
		{"[pi3] applies", "[pi3]\nkernel=a\ncmdline=other.txt\ndevice_tree=x.dtb\n[pi4]\nkernel=b\n", Settings{Kernel: "a", Cmdline: "other.txt", DTB: "x.dtb"}, false},
		{"an address this model does not read", "initramfs initrd.img 0x01f00000\n", Settings{}, true},
	} {
		got, err := Parse(tc.config, Pi3B)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

// A card whose first partition is FAT: the files config.txt names come out
// of it; tryboot.txt is read instead on a tryboot boot; a missing kernel is
// an error naming it.
func TestRead(t *testing.T) {
	testenv.NeedProgram(t, "mtype")
	testenv.NeedProgram(t, "mkfs.vfat")
	dir := t.TempDir()
	card := filepath.Join(dir, "sd.img")
	files := map[string][]byte{
		"config.txt":   []byte("arm_64bit=1\nupstream_kernel=1\nkernel=vmlinuz-1\ninitramfs initrd.img-1 followkernel\n"),
		"tryboot.txt":  []byte("arm_64bit=1\ninitramfs other followkernel\ncmdline=tb.txt\n"),
		"cmdline.txt":  []byte("console=ttyS1,115200 root=LABEL=RASPIROOT rw\n"),
		"tb.txt":       []byte("console=ttyS1,115200 debug\n"),
		"vmlinuz-1":    []byte("KERNEL"),
		"kernel8.img":  []byte("DEFAULT KERNEL"),
		"initrd.img-1": []byte("INITRD"),
		"other":        []byte("OTHER INITRD"),
		// FAT names are case-insensitive; the firmware finds either
		"BCM2837-RPI-3-B.DTB": []byte("DTB"),
		"bcm2710-rpi-3-b.dtb": []byte("DOWNSTREAM DTB"),
	}
	img, err := testimg.Build(card, 64*testimg.MiB, []testimg.Part{
		{Size: 32 * testimg.MiB, Type: "c", FS: "vfat", Label: "RASPIFIRM", Files: files},
		{Size: 30 * testimg.MiB, Type: "83", RandSeed: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Read(card, Pi3B, false, dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.KernelName != "vmlinuz-1" || b.DTBName != "bcm2837-rpi-3-b.dtb" || b.InitrdName != "initrd.img-1" ||
		b.Cmdline != "console=ttyS1,115200 root=LABEL=RASPIROOT rw" {
		t.Errorf("config.txt boot: %+v", b)
	}
	for p, want := range map[string]string{b.Kernel: "KERNEL", b.DTB: "DTB", b.Initrd: "INITRD"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	b, err = Read(card, Pi3B, true, dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Config != "tryboot.txt" || b.KernelName != "kernel8.img" || b.DTBName != "bcm2710-rpi-3-b.dtb" || b.InitrdName != "other" || b.Cmdline != "console=ttyS1,115200 debug" {
		t.Errorf("tryboot boot: %+v", b)
	}
	if got, _ := os.ReadFile(b.Kernel); string(got) != "DEFAULT KERNEL" {
		t.Errorf("the default 64-bit kernel: %q", got)
	}
	del := exec.Command("mdel", "-i", fmt.Sprintf("%s@@%d", card, img.Parts[0].Start), "::/vmlinuz-1")
	del.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := del.CombinedOutput(); err != nil {
		t.Fatalf("mdel: %v: %s", err, out)
	}
	if _, err := Read(card, Pi3B, false, dir); err == nil {
		t.Error("a config.txt naming a missing kernel boots")
	}
}
