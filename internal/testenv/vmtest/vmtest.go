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
}

// FindKernel locates the cached kernel (BALENA_MIGRATE_TEST_CACHE overrides
// the cache directory).
func FindKernel() (Kernel, error) {
	cache := os.Getenv("BALENA_MIGRATE_TEST_CACHE")
	if cache == "" {
		cache = DefaultCache
	}
	k := Kernel{Vmlinuz: filepath.Join(cache, "kernel", "vmlinuz")}
	mods, _ := filepath.Glob(filepath.Join(cache, "kernel", "lib", "modules", "*"))
	if len(mods) != 1 {
		return k, fmt.Errorf("%w in %s/kernel: run scripts/test-setup.d/50-vm-kernel", ErrNoKernel, cache)
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
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
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
i=0; while [ ! -b "$ROOT_DEV" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /root
if mount -t ext4 -o ro "$ROOT_DEV" /root; then
	/bin/balena-migrate stage2 $STAGE2_FLAGS --config /etc/balena-migrate-stage2.conf
	echo "VMTEST-EXIT=$?"
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
	mods, err := ModuleClosure(s.Kernel.ModulesDir, stage2Modules())
	if err != nil {
		return err
	}
	for _, m := range mods {
		if err := a.AddHostFile("lib/modules/"+m, filepath.Join(s.Kernel.ModulesDir, m)); err != nil {
			return err
		}
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
	a.AddFile("etc/vmtest.env", []byte("ROOT_DEV="+s.RootDev+"\nSTAGE2_FLAGS="+flags+"\nEARLY="+early+"\n"), 0o644)
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
	Kernel  Kernel
	Initrd  string
	Disks   []string // raw images, attached as virtio disks vda, vdb, …
	Memory  int      // MiB; 1024 when 0
	Timeout time.Duration
}

// Result is what a boot reported.
type Result struct {
	ExitCode int    // the exit code the init script printed; -1 when stage 2 rebooted
	Rebooted bool   // stage 2 rebooted the VM (reboot(2) with RESTART)
	Console  string // everything on the serial console
	Duration time.Duration
}

var exitRe = regexp.MustCompile(`VMTEST-EXIT=(\d+)`)

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
	args := []string{"-accel", "tcg", "-nographic", "-no-reboot", "-m", strconv.Itoa(vm.Memory)}
	if vm.Kernel.Vmlinuz != "" {
		args = append(args, "-kernel", vm.Kernel.Vmlinuz, "-initrd", vm.Initrd,
			"-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init no_timer_check")
	}
	for _, d := range vm.Disks {
		args = append(args, "-drive", "file="+d+",format=raw,if=virtio")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
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
