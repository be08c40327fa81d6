// Package vmtest boots stage 2 in a real Linux VM: Debian's cloud kernel
// (fetched by scripts/test-setup.d/50-vm-kernel), a busybox initramfs built
// here carrying the static balena-migrate, the stage-2 config and the kernel
// modules stage 2 needs, and qemu-system-x86_64 with TCG and virtio disks.
// The initramfs init mounts the "old root" read-only at /root, runs
// `balena-migrate stage2 --no-reboot` (or without --no-reboot, to see it
// reboot), prints the exit code on the console and powers off; qemu runs
// with -no-reboot, so a reboot ends the VM too. Boot returns the exit code
// (or that stage 2 rebooted) and the console output.
package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// DefaultCache is where the setup script caches the kernel.
const DefaultCache = "/var/cache/balena-migrate-test"

// ErrNoKernel marks a missing cached kernel (run scripts/test-setup.d/50-vm-kernel).
var ErrNoKernel = errors.New("no cached VM kernel")

// stage2Modules are the modules the init script loads (with their
// dependencies, in dependency order): the virtio disk, FAT with its code
// pages, ext4 (built into Debian's cloud kernel).
func stage2Modules() []string {
	return []string{"virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_iso8859_1", "nls_ascii", "ext4"}
}

// Kernel is an unpacked kernel package.
type Kernel struct {
	Vmlinuz    string
	ModulesDir string // lib/modules/<release>
	// of an ARM tree's kernel (FindARMKernel):
	DTBs      string // directory of its device trees
	Busybox   string // the tree's static busybox
	GrubARM64 string // the tree's grub modules for arm64 EFI, where it has grub
}

// FindKernel locates the cached cloud kernel (BALENA_MIGRATE_TEST_CACHE
// overrides the cache directory).
func FindKernel() (Kernel, error) { return findKernel("kernel", "50-vm-kernel") }

// FindGenericKernel locates the cached generic kernel (linux-image-amd64),
// which has the hardware watchdog drivers the cloud kernel lacks; ext4 and
// the virtio disk are modules there (GenericModules).
func FindGenericKernel() (Kernel, error) { return findKernel("kernel-generic", "51-vm-generic-kernel") }

// GenericModules are the modules a stage-2 boot of the generic kernel loads
// besides those of the cloud kernel: the checksum ext4 asks for by name.
func GenericModules() []string { return []string{"crc32c_generic"} }

// CacheDir is the test cache (BALENA_MIGRATE_TEST_CACHE, else DefaultCache).
func CacheDir() string {
	if cache := os.Getenv("BALENA_MIGRATE_TEST_CACHE"); cache != "" {
		return cache
	}
	return DefaultCache
}

func findKernel(dir, step string) (Kernel, error) {
	cache := CacheDir()
	k := Kernel{Vmlinuz: filepath.Join(cache, dir, "vmlinuz")}
	mods, _ := filepath.Glob(filepath.Join(cache, dir, "lib", "modules", "*"))
	if len(mods) != 1 {
		return k, fmt.Errorf("%w in %s/%s: run scripts/test-setup.d/%s", ErrNoKernel, cache, dir, step)
	}
	k.ModulesDir = mods[0]
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		return k, fmt.Errorf("%w: %v", ErrNoKernel, err)
	}
	return k, nil
}

// BuildBinary builds the static balena-migrate (CGO_ENABLED=0) from the
// module containing dir into out.
func BuildBinary(ctx context.Context, moduleDir, out string) error {
	return BuildStatic(ctx, moduleDir, "./cmd/balena-migrate", out)
}

// BuildStatic builds the command pkg of the module in moduleDir as a static
// binary (CGO_ENABLED=0), as a VM's initramfs or image needs it.
func BuildStatic(ctx context.Context, moduleDir, pkg, out string) error {
	return BuildStaticFor(ctx, moduleDir, pkg, out, runtime.GOARCH)
}

// BuildStaticFor builds it for the architecture goarch (arm64 for the ARM
// VMs).
func BuildStaticFor(ctx context.Context, moduleDir, pkg, out, goarch string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkg, err, b)
	}
	return nil
}

// Stage2Initramfs describes the initramfs for one stage-2 boot.
type Stage2Initramfs struct {
	Kernel  Kernel
	Binary  string // static balena-migrate on the host
	Config  []byte // stage-2 config, installed as /etc/balena-migrate-stage2.conf
	RootDev string // the old root partition in the VM, e.g. /dev/vda1
	Busybox string // static busybox; /bin/busybox when empty
	// Reboot runs stage 2 without --no-reboot, as on a device: it may
	// reboot the VM itself (Result.Rebooted).
	Reboot bool
	// Early runs `stage2 --early` first, as the init-top script of the
	// real initramfs does.
	Early bool
	// Modules are more modules to load (with what they depend on) before
	// anything runs, e.g. a watchdog driver.
	Modules []string
	// Delay is how long the init waits after the init-top step before it
	// mounts the old root, as a slow boot (fsck, a late disk) would.
	Delay time.Duration
	// Freeze runs stage 2 in the background and stops it (SIGSTOP) once it
	// has taken the watchdog over: nothing feeds the watchdog any more.
	// The init then waits 10 minutes and reports VMTEST-NOT-RESET.
	Freeze bool
	// BaseModules are the modules of the machine's disk and file systems,
	// loaded first; the x86 VM's virtio disk, FAT and ext4 ones when nil.
	BaseModules []string
}

// initScript is /init: mount the basics, load modules, (with Early) run the
// init-top step, mount the old root read-only (as initramfs-tools does),
// run stage 2, report, power off.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/vmtest.env
for m in $(cat /etc/modules.load); do insmod /lib/modules/$m || echo "vmtest: insmod $m failed"; done
if [ -n "$EARLY" ]; then
	/bin/balena-migrate stage2 --config /etc/balena-migrate-stage2.conf --early
fi
if [ "$DELAY" -gt 0 ]; then
	echo "vmtest: waiting $DELAY s before mounting the old root"
	sleep "$DELAY"
fi
i=0; while [ ! -b "$ROOT_DEV" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /root
if mount -t ext4 -o ro "$ROOT_DEV" /root; then
	if [ -n "$FREEZE" ]; then
		/bin/balena-migrate stage2 $STAGE2_FLAGS --config /etc/balena-migrate-stage2.conf >/tmp/stage2.out 2>&1 &
		pid=$!
		tail -f /tmp/stage2.out &
		while ! grep -q "taken over" /tmp/stage2.out; do sleep 0.2; done
		kill -STOP $pid
		echo "VMTEST-FROZEN: stage 2 stopped"
		sleep 600
		echo "VMTEST-NOT-RESET"
		echo "VMTEST-EXIT=254"
	else
		/bin/balena-migrate stage2 $STAGE2_FLAGS --config /etc/balena-migrate-stage2.conf
		echo "VMTEST-EXIT=$?"
	fi
else
	echo "vmtest: cannot mount $ROOT_DEV"
	echo "VMTEST-EXIT=255"
fi
sync
poweroff -f
`

// Write builds the gzip cpio at path.
func (s Stage2Initramfs) Write(path string) error {
	a := Archive{}
	bb := s.Busybox
	if bb == "" {
		bb = "/bin/busybox"
	}
	if err := a.AddHostFile("bin/busybox", bb); err != nil {
		return fmt.Errorf("busybox: %w", err)
	}
	if err := a.AddHostFile("bin/balena-migrate", s.Binary); err != nil {
		return fmt.Errorf("balena-migrate binary: %w", err)
	}
	base := s.BaseModules
	if base == nil {
		base = stage2Modules()
	}
	rels, err := ModuleClosure(s.Kernel.ModulesDir, append(base, s.Modules...))
	if err != nil {
		return err
	}
	mods, err := AddModules(a, s.Kernel.ModulesDir, rels)
	if err != nil {
		return err
	}
	a.AddFile("init", []byte(initScript), 0o755)
	a.AddFile("etc/modules.load", []byte(strings.Join(mods, "\n")+"\n"), 0o644)
	flags := "--no-reboot"
	if s.Reboot {
		flags = ""
	}
	early := ""
	if s.Early {
		early = "1"
	}
	freeze := ""
	if s.Freeze {
		freeze = "1"
	}
	a.AddFile("etc/vmtest.env", []byte("ROOT_DEV="+s.RootDev+"\nSTAGE2_FLAGS="+flags+"\nEARLY="+early+"\nFREEZE="+freeze+"\nDELAY="+strconv.Itoa(int(s.Delay.Seconds()))+"\n"), 0o644)
	a.AddFile("etc/balena-migrate-stage2.conf", s.Config, 0o600)
	a["dev/console"] = Entry{Mode: ModeChar | 0o600, Major: 5, Minor: 1}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "root"} {
		a[d] = Entry{Mode: ModeDir | 0o755}
	}
	var buf bytes.Buffer
	if err := a.WriteGzip(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// VM is one qemu boot: of Kernel and Initrd when set, otherwise from the
// first disk through the PC BIOS (SeaBIOS), as the device would.
type VM struct {
	Kernel Kernel
	Initrd string
	Disks  []string // raw images, attached as virtio disks vda, vdb, …
	// DiskOptions are more -drive options for the disk of the same index
	// ("throttling.bps-write=…").
	DiskOptions []string
	// DiskSerials are the serial numbers the disks report (virtio-blk's
	// serial, /sys/block/vdX/serial in the guest); "" for none.
	DiskSerials []string
	Args        []string // more qemu arguments ("-device", "i6300esb")
	Memory      int      // MiB; 1024 when 0
	Timeout     time.Duration
	// Pi3 boots qemu's raspi3b (a Raspberry Pi 3 Model B, 1 GiB) instead
	// of a PC: Kernel with the device tree DTB, the one disk as its SD
	// card (mmcblk0), the console on the mini UART (ttyS1).
	Pi3 bool
	DTB string
}

// Result is what a boot reported.
type Result struct {
	ExitCode int    // the exit code the init script printed; -1 when stage 2 rebooted
	Rebooted bool   // stage 2 rebooted the VM (reboot(2) with RESTART)
	Console  string // everything on the serial console
	Duration time.Duration
}

var exitRe = regexp.MustCompile(`VMTEST-EXIT=(\d+)`)

// ErrReset marks a VM that ended without reporting an exit code and
// without rebooting itself: reset from outside the guest's own reboot, as a
// hardware watchdog resets a machine (qemu runs with -no-reboot, so the
// reset ends it).
var ErrReset = errors.New("VM was reset (it neither reported an exit code nor rebooted itself)")

// Boot runs the VM until it powers off and returns the reported exit code.
func Boot(ctx context.Context, vm VM) (Result, error) {
	if vm.Memory == 0 {
		vm.Memory = 1024
	}
	if vm.Timeout == 0 {
		vm.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, vm.Timeout)
	defer cancel()
	prog, args := "qemu-system-x86_64", []string{"-accel", "tcg", "-nographic", "-no-reboot", "-m", strconv.Itoa(vm.Memory)}
	switch {
	case vm.Pi3:
		if len(vm.Disks) != 1 {
			return Result{}, fmt.Errorf("a Pi 3 has one SD card, got %d disks", len(vm.Disks))
		}
		prog = "qemu-system-aarch64"
		args = []string{"-accel", "tcg", "-M", "raspi3b", "-display", "none", "-monitor", "none", "-no-reboot",
			"-serial", "null", "-serial", "stdio", "-kernel", vm.Kernel.Vmlinuz, "-dtb", vm.DTB, "-initrd", vm.Initrd,
			"-append", "console=ttyS1,115200 panic=-1 loglevel=4 rdinit=/init",
			"-drive", "if=sd,format=raw,file=" + vm.Disks[0]}
	case vm.Kernel.Vmlinuz != "":
		args = append(args, "-kernel", vm.Kernel.Vmlinuz, "-initrd", vm.Initrd,
			"-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init no_timer_check")
	}
	for i, d := range vm.Disks {
		if vm.Pi3 {
			break // the SD card, above
		}
		// A drive without a device, and its virtio disk: vda, vdb, … in order.
		drive := fmt.Sprintf("if=none,id=disk%d,file=%s,format=raw", i, d)
		if i < len(vm.DiskOptions) && vm.DiskOptions[i] != "" {
			drive += "," + vm.DiskOptions[i]
		}
		dev := fmt.Sprintf("virtio-blk-pci,drive=disk%d", i)
		if i < len(vm.DiskSerials) && vm.DiskSerials[i] != "" {
			dev += ",serial=" + vm.DiskSerials[i]
		}
		args = append(args, "-drive", drive, "-device", dev)
	}
	args = append(args, vm.Args...)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	res := Result{ExitCode: -1, Console: out.String(), Duration: time.Since(start)}
	if ctx.Err() != nil {
		return res, fmt.Errorf("VM did not power off within %s: %w", vm.Timeout, ctx.Err())
	}
	if err != nil {
		return res, fmt.Errorf("qemu: %w", err)
	}
	if vm.Kernel.Vmlinuz == "" {
		return res, nil // a firmware boot reports through the console only
	}
	m := exitRe.FindAllStringSubmatch(res.Console, -1)
	if len(m) == 0 {
		if strings.Contains(res.Console, "reboot: Restarting system") {
			res.Rebooted = true
			return res, nil
		}
		if !strings.Contains(res.Console, "reboot: Power down") && !strings.Contains(res.Console, "Kernel panic") {
			return res, ErrReset
		}
		return res, errors.New("VM powered off without reporting an exit code")
	}
	res.ExitCode, _ = strconv.Atoi(m[len(m)-1][1])
	return res, nil
}

func readFileOrEmpty(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return b, err
}
