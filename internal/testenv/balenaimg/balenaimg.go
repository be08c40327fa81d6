// Package balenaimg builds a bootable stand-in for a balenaOS image, from
// scratch, with the partition layout of a real device type: resin-boot (FAT)
// holding the boot loader's configuration, resin-rootA (ext4) holding Debian's
// cloud kernel and a small initramfs, resin-rootB, resin-state and
// resin-data. genericx86-64-ext (BuildMBR): an MBR with the last two in an
// extended partition, booted by the PC BIOS through grub in the MBR
// (boot.img, with core.img in the gap before the first partition).
// generic-amd64 (BuildGPT): a GPT whose resin-boot is the EFI system
// partition with grub's EFI image, booted by UEFI firmware.
// generic-aarch64 (BuildGenericAArch64) is that for an arm64 machine;
// raspberrypi3 (BuildRaspberryPi3) an SD card whose resin-boot holds what
// the Pi's firmware boots (arm.go).
//
// The initramfs's init mounts resin-boot and resin-data, brings up the
// network with DHCP and runs balenaos-standin (cmd/dev/balenaos-standin):
// it reads config.json, prints what stage 2 left on resin-data and reports
// to the balena API as the device. So a device that comes online after a
// flash proves that the image was written whole and bootable, and that
// config.json was put on the right partition.
package balenaimg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// Console markers the init prints.
const (
	MarkBoot   = "STANDIN balenaOS stand-in booting"
	MarkOnline = "STANDIN-ONLINE uuid="
	MarkExit   = "STANDIN-EXIT="
)

// Options say what goes into an image.
type Options struct {
	Path    string            // the raw image to write
	Kernel  vmtest.Kernel     // Debian's cloud kernel (scripts/test-setup.d/50-vm-kernel)
	Standin string            // static balenaos-standin binary
	Busybox string            // static busybox; /bin/busybox when empty
	Boot    map[string][]byte // extra files on resin-boot (config.json in tests)
	Data    map[string][]byte // extra files on resin-data
	// OSVersion is the balenaOS version the image is, as its supervisor
	// reports it (e.g. "balenaOS 2.113.0"); the stand-in's default when
	// empty.
	OSVersion string
}

// Image is a built stand-in.
type Image struct {
	testimg.Image
}

// board is what differs between the machines a stand-in boots on: the
// modules its init loads, with their dependencies.
type board struct {
	modules []string
}

// pc: the virtio disk and network, FAT with its code pages, ext4 (built
// into the cloud kernel), efivarfs for the firmware's variables.
var pc = board{modules: []string{"virtio_pci", "virtio_blk", "virtio_net", "vfat", "nls_cp437", "nls_iso8859_1", "nls_ascii", "ext4", "efivarfs"}}

// MarkEFI starts the line on which the init prints, booted through UEFI,
// the firmware's BootCurrent and BootOrder variables as efivarfs holds
// them (hex: four bytes of attributes, then the data).
const MarkEFI = "STANDIN-EFI "

// BuildStandin builds the static balenaos-standin from the module at repo.
func BuildStandin(ctx context.Context, repo, out string) error {
	return vmtest.BuildStatic(ctx, repo, "./cmd/dev/balenaos-standin", out)
}

// BuildStandinFor builds it for goarch (arm64 for the ARM stand-ins).
func BuildStandinFor(ctx context.Context, repo, out, goarch string) error {
	return vmtest.BuildStaticFor(ctx, repo, "./cmd/dev/balenaos-standin", out, goarch)
}

// BuildMBR writes a genericx86-64-ext-shaped image booting with the PC BIOS.
func BuildMBR(ctx context.Context, o Options) (Image, error) {
	rootA, err := rootFiles(o, pc)
	if err != nil {
		return Image{}, err
	}
	boot := map[string][]byte{"grub/grub.cfg": []byte(grubCfg)}
	for k, v := range o.Boot {
		boot[k] = v
	}
	parts := []testimg.Part{
		{Size: 16 * testimg.MiB, Type: "c", FS: "vfat", Label: testimg.LabelBoot, Files: boot},
		{Size: sizeFor(rootA), Type: "83", FS: "ext4", Label: testimg.LabelRootA, Files: rootA},
		{Size: 8 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelRootB},
		{Size: 4 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelState, Logical: true},
		{Size: 16 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelData, Logical: true, Files: copyFiles(o.Data)},
	}
	var size int64 = 2 * testimg.MiB // the gap before the first partition, and slack
	for _, p := range parts {
		size += p.Size
		if p.Logical {
			size += testimg.MiB // each logical partition's EBR, aligned
		}
	}
	img, err := testimg.Build(o.Path, size, parts)
	if err != nil {
		return Image{}, err
	}
	if err := installGrub(ctx, o.Path, img); err != nil {
		return Image{}, err
	}
	return Image{img}, nil
}

// rootFiles is resin-rootA: the kernel and the stand-in's initramfs.
func rootFiles(o Options, b board) (map[string][]byte, error) {
	initrd, err := initramfs(o, b)
	if err != nil {
		return nil, err
	}
	kernel, err := os.ReadFile(o.Kernel.Vmlinuz)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{"boot/vmlinuz": kernel, "boot/initramfs.gz": initrd,
		"etc/os-release": []byte("ID=balena-os\nNAME=balenaOS stand-in\nPRETTY_NAME=" + o.OSVersion + "\n")}, nil
}

// sizeFor is a partition size holding files, with room for ext4 itself.
func sizeFor(files map[string][]byte) int64 {
	var n int64
	for _, b := range files {
		n += int64(len(b))
	}
	return n/testimg.MiB*testimg.MiB + 8*testimg.MiB
}

func copyFiles(m map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// grubCfg boots the kernel and init from resin-rootA, found by label as
// balenaOS's own grub configuration does.
const grubCfg = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
search --no-floppy --set=root --label resin-rootA
echo "stand-in grub: booting resin-rootA"
linux /boot/vmlinuz console=ttyS0,115200 rdinit=/init panic=-1 loglevel=4 no_timer_check
initrd /boot/initramfs.gz
boot
`

// grubModules are built into core.img: it needs no module directory.
func grubModules() []string {
	return []string{"biosdisk", "part_msdos", "fat", "ext2", "normal", "linux", "search", "search_label",
		"serial", "terminal", "echo", "configfile", "test"}
}

// installGrub puts grub's boot.img into the MBR's boot code area (the
// partition table stays) and core.img right after the MBR, where boot.img
// looks for it; core.img finds grub.cfg on resin-boot (partition 1).
func installGrub(ctx context.Context, path string, img testimg.Image) error {
	const grubDir = "/usr/lib/grub/i386-pc"
	bootImg, err := os.ReadFile(filepath.Join(grubDir, "boot.img"))
	if err != nil {
		return fmt.Errorf("grub boot.img (grub-pc-bin): %w", err)
	}
	core := path + ".core.img"
	defer os.Remove(core)
	args := append([]string{"-O", "i386-pc", "-p", "(hd0,msdos1)/grub", "-o", core}, grubModules()...)
	if out, err := exec.CommandContext(ctx, "grub-mkimage", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("grub-mkimage: %w: %s", err, out)
	}
	coreImg, err := os.ReadFile(core)
	if err != nil {
		return err
	}
	first := img.Parts[0].Start
	if int64(512+len(coreImg)) > first {
		return fmt.Errorf("grub core.img (%d bytes) does not fit before the first partition at %d", len(coreImg), first)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(bootImg[:440], 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(coreImg, 512); err != nil {
		return err
	}
	return f.Sync()
}

// initScript is the stand-in's /init.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "STANDIN balenaOS stand-in booting: $(uname -r)"
for m in $(cat /etc/modules.load); do insmod /lib/modules/$m || echo "STANDIN insmod $m failed"; done
i=0
while [ -z "$(findfs LABEL=resin-data 2>/dev/null)" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /mnt/boot /mnt/data
mount -t vfat -o ro "$(findfs LABEL=resin-boot)" /mnt/boot || echo "STANDIN cannot mount resin-boot"
mount -t ext4 -o ro "$(findfs LABEL=resin-data)" /mnt/data || echo "STANDIN cannot mount resin-data"
echo "STANDIN mounted resin-boot from $(findfs LABEL=resin-boot), resin-data from $(findfs LABEL=resin-data)"
if [ -d /sys/firmware/efi ]; then
	mount -t efivarfs efivarfs /sys/firmware/efi/efivars || echo "STANDIN cannot mount efivarfs"
	v=/sys/firmware/efi/efivars
	g=8be4df61-93ca-11d2-aa0d-00e098032b8c
	echo "STANDIN-EFI BootCurrent=$(hexdump -v -e '1/1 "%02x"' $v/BootCurrent-$g) BootOrder=$(hexdump -v -e '1/1 "%02x"' $v/BootOrder-$g)"
fi
# the first network interface: eth0 on virtio, usb0 on a Pi's USB adapter
ifc=
i=0
while [ -z "$ifc" ] && [ $i -lt 600 ]; do
	for n in $(ls /sys/class/net); do [ "$n" = lo ] || { ifc=$n; break; }; done
	[ -n "$ifc" ] || sleep 0.1
	i=$((i+1))
done
ip link set lo up
ip link set "$ifc" up
udhcpc -i "$ifc" -s /etc/udhcpc.script -n -q -t 20 -T 1 || echo "STANDIN no DHCP lease"
/bin/balenaos-standin --boot /mnt/boot --data /mnt/data --os-version "$(cat /etc/os-version)"
echo "STANDIN-EXIT=$?"
umount /mnt/boot /mnt/data
sync
poweroff -f
`

// udhcpcScript applies the lease, as NetworkManager would on balenaOS.
const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	echo "STANDIN network: $interface $ip/${mask:-24} router $router"
	;;
esac
`

func initramfs(o Options, b board) ([]byte, error) {
	a := vmtest.Archive{}
	bb := o.Busybox
	if bb == "" {
		bb = "/bin/busybox"
	}
	if err := a.AddHostFile("bin/busybox", bb); err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	if err := a.AddHostFile("bin/balenaos-standin", o.Standin); err != nil {
		return nil, fmt.Errorf("balenaos-standin: %w", err)
	}
	rels, err := vmtest.ModuleClosure(o.Kernel.ModulesDir, b.modules)
	if err != nil {
		return nil, err
	}
	mods, err := vmtest.AddModules(a, o.Kernel.ModulesDir, rels)
	if err != nil {
		return nil, err
	}
	a.AddFile("init", []byte(initScript), 0o755)
	osVersion := o.OSVersion
	if osVersion == "" {
		osVersion = supervisor.DefaultState.OSVersion
	}
	a.AddFile("etc/os-version", []byte(osVersion+"\n"), 0o644)
	a.AddFile("etc/udhcpc.script", []byte(udhcpcScript), 0o755)
	a.AddFile("etc/modules.load", []byte(strings.Join(mods, "\n")+"\n"), 0o644)
	a["dev/console"] = vmtest.Entry{Mode: vmtest.ModeChar | 0o600, Major: 5, Minor: 1}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "mnt"} {
		a[d] = vmtest.Entry{Mode: vmtest.ModeDir | 0o755}
	}
	var buf bytes.Buffer
	if err := a.WriteGzip(&buf); err != nil {
		return nil, err
	}
	if buf.Len() == 0 {
		return nil, errors.New("empty initramfs")
	}
	return buf.Bytes(), nil
}
