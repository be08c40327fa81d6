package devvm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/testenv/pifirmware"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// Board is the machine a VM is.
type Board int

const (
	// BoardPC is a PC under qemu-system-x86_64: the PC BIOS, or OVMF with
	// UEFIVars; virtio disks and network.
	BoardPC Board = iota
	// BoardARM64 is qemu's arm64 "virt" machine under qemu-system-aarch64
	// with UEFI firmware (AAVMF, Debian's qemu-efi-aarch64; UEFIVars is
	// required), a Cortex-A57, virtio disks and network.
	BoardARM64
	// BoardPi3 is qemu's raspi3b, a Raspberry Pi 3 Model B: 1 GiB, the
	// first disk is the SD card (mmcblk0), the network a USB Ethernet
	// adapter, the console the mini UART (ttyS1). qemu has no GPU
	// firmware: at every power-on and reset this package reads config.txt
	// from the card and starts the kernel, device tree and initramfs it
	// names (package pifirmware), so each reset is a new qemu.
	BoardPi3
)

// AAVMF firmware (Debian's qemu-efi-aarch64): code read-only, variables per VM.
const (
	AAVMFCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	AAVMFVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// ARMSetupScript builds the ARM device disks, relative to the repository
// root; scripts/e2e runs it (scripts/test does not: CI has no time for
// whole ARM machines under TCG).
const ARMSetupScript = "scripts/e2e-setup.d/arm-device-vm"

// ARMImageDir is where the current ARM setup script puts its output, named
// after its hash and the tree builder's.
func ARMImageDir(repo string) (string, error) {
	h := sha256.New()
	for _, s := range []string{ARMSetupScript, vmtest.ARMTreeScript} {
		data, err := os.ReadFile(filepath.Join(repo, s))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	return filepath.Join(Cache(), "armvm-"+hex.EncodeToString(h.Sum(nil))[:16]), nil
}

// FindARM64 returns the UEFI arm64 device disk (Debian 12, grub-efi-arm64).
func FindARM64(repo string) (Image, error) { return findARM(repo, "arm64.img", BoardARM64) }

// FindPi3 returns the Raspberry Pi 3 SD card (Debian 13, raspi-firmware).
func FindPi3(repo string) (Image, error) { return findARM(repo, "rpi3.img", BoardPi3) }

func findARM(repo, disk string, b Board) (Image, error) {
	dir, err := ARMImageDir(repo)
	if err != nil {
		return Image{}, err
	}
	img := Image{Disk: filepath.Join(dir, disk), Key: filepath.Join(dir, "id_ed25519"),
		Password: filepath.Join(dir, "password"), User: "migrate", UEFI: b == BoardARM64, Board: b}
	for _, p := range []string{img.Disk, img.Key, img.Password} {
		if _, err := os.Stat(p); err != nil {
			return img, fmt.Errorf("%w: %s: run %s (scripts/e2e does)", ErrNoImage, p, ARMSetupScript)
		}
	}
	return img, nil
}

func (m *Machine) arm64Args(common []string, net string) ([]string, error) {
	cfg := m.cfg
	if cfg.UEFIVars == "" {
		return nil, fmt.Errorf("%s: the arm64 machine boots with UEFI: UEFIVars is required", cfg.Name)
	}
	if _, err := os.Stat(cfg.UEFIVars); err != nil {
		if err := copyFile(AAVMFVars, cfg.UEFIVars); err != nil {
			return nil, fmt.Errorf("AAVMF variables (package qemu-efi-aarch64): %w", err)
		}
	}
	args := append(common, "-M", "virt", "-cpu", "cortex-a57", "-smp", "1", "-serial", "stdio",
		"-drive", "if=pflash,format=raw,readonly=on,file="+AAVMFCode,
		"-drive", "if=pflash,format=raw,file="+cfg.UEFIVars,
		"-netdev", net, "-device", "virtio-net-pci,netdev=net0")
	for i, d := range cfg.Disks {
		args = append(args, "-drive", fmt.Sprintf("if=none,id=disk%d,format=raw,file=%s", i, d),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d", i))
	}
	return args, nil
}

// pi3Args reads the boot files from the SD card, as the firmware would,
// into a directory beside the console log.
func (m *Machine) pi3Args(common []string, net string) ([]string, error) {
	cfg := m.cfg
	if len(cfg.Disks) != 1 {
		return nil, fmt.Errorf("%s: a Pi 3 has one SD card, got %d disks", cfg.Name, len(cfg.Disks))
	}
	dir := filepath.Join(filepath.Dir(cfg.Console), fmt.Sprintf("firmware-boot-%d", m.boots+1))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b, err := pifirmware.Read(cfg.Disks[0], pifirmware.Pi3B, false, dir)
	if err != nil {
		// what the Pi shows then: nothing boots
		fmt.Fprintf(m.log, "\ndevvm: %s: the firmware finds nothing to boot: %v\n", cfg.Name, err)
		return nil, fmt.Errorf("%s: firmware: %w", cfg.Name, err)
	}
	fmt.Fprintf(m.log, "\ndevvm: %s: firmware boot %d: %s: kernel %s, device tree %s, initramfs %q, command line %q\n",
		cfg.Name, m.boots+1, b.Config, b.KernelName, b.DTBName, b.InitrdName, b.Cmdline)
	args := append(common, "-M", "raspi3b", "-kernel", b.Kernel, "-dtb", b.DTB, "-append", b.Cmdline,
		"-no-reboot", "-serial", "null", "-serial", "stdio",
		"-drive", "if=sd,format=raw,file="+cfg.Disks[0],
		"-netdev", net, "-device", "usb-net,netdev=net0")
	if b.Initrd != "" {
		args = append(args, "-initrd", b.Initrd)
	}
	return args, nil
}

// restarting says whether the boot whose console starts at byte from
// ended in a reset (the Pi starts again) rather than a power-off or a
// crash.
func (m *Machine) restarting(from int) bool {
	c := m.Console()
	if from > len(c) {
		return false
	}
	c = c[from:]
	return strings.Contains(c, "reboot: Restarting system") && !strings.Contains(c, "reboot: Power down")
}
