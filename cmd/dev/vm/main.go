// Command vm boots stage 2 in a qemu VM by hand, with the harness the tests
// use (internal/vmtest): Debian's cloud kernel (cached by
// scripts/test-setup.d/50-vm-kernel), a busybox initramfs carrying a fresh
// static balena-migrate and the given stage-2 config, and the given raw disk
// images as virtio disks (vda, vdb, …). The init script mounts -root
// read-only at /root, runs `balena-migrate stage2 --no-reboot` and powers off.
//
//	go run ./cmd/dev/vm -config stage2.conf -root /dev/vda1 disk.img [more.img …]
//
// It prints the console and exits with the exit code stage 2 reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

func main() {
	config := flag.String("config", "", "stage-2 config `FILE` to put in the initramfs")
	root := flag.String("root", "/dev/vda1", "old root `DEVICE` in the VM")
	memory := flag.Int("m", 1024, "VM memory in `MiB`")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after `DURATION`")
	flag.Parse()
	if *config == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./cmd/dev/vm -config stage2.conf [-root /dev/vda1] disk.img [more.img …]")
		os.Exit(2)
	}
	code, err := run(*config, *root, *memory, *timeout, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "vm:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(config, root string, memory int, timeout time.Duration, disks []string) (int, error) {
	ctx := context.Background()
	k, err := vmtest.FindKernel()
	if err != nil {
		return 0, err
	}
	conf, err := os.ReadFile(config)
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "balena-migrate-vm-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "balena-migrate")
	if err := vmtest.BuildBinary(ctx, ".", bin); err != nil {
		return 0, err
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := (vmtest.Stage2Initramfs{Kernel: k, Binary: bin, Config: conf, RootDev: root}).Write(initrd); err != nil {
		return 0, err
	}
	res, err := vmtest.Boot(ctx, vmtest.VM{Kernel: k, Initrd: initrd, Disks: disks, Memory: memory, Timeout: timeout})
	fmt.Print(res.Console)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "vm: stage 2 exited %d after %s\n", res.ExitCode, res.Duration.Round(time.Millisecond))
	return res.ExitCode, nil
}
