// Package pifirmware does for qemu's raspi3b machine what a Raspberry Pi's
// GPU firmware does at power-on, which qemu does not: it reads config.txt
// — or, on the one boot after a `reboot "0 tryboot"`, tryboot.txt — from
// the FAT partition of the SD card, and hands the kernel, device tree,
// initramfs and command line it names to the machine (qemu's -kernel,
// -dtb, -initrd and -append).
//
// It reads the settings the boot partitions of Debian, Raspberry Pi OS,
// balena-migrate and the balenaOS stand-in use: conditional sections
// ([all], [none], the board's own such as [pi3]; others are skipped),
// arm_64bit, kernel=, initramfs <file> [followkernel], cmdline=,
// device_tree= and upstream_kernel. It is a model of the firmware, not the
// firmware: what the real one makes of a config.txt is proven on real
// boards only.
package pifirmware

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
)

// Board is what the firmware of one board model looks for.
type Board struct {
	Name    string   // for messages
	Filters []string // the conditional sections that apply to it, besides [all]
	// DTB is the device tree the firmware loads by default; UpstreamDTB
	// the one it loads with upstream_kernel=1 (Debian's layout).
	DTB, UpstreamDTB string
	// Kernel64 is the default kernel with arm_64bit=1, Kernel32 without.
	Kernel64, Kernel32 string
}

// Pi3B is the Raspberry Pi 3 Model B, qemu's raspi3b.
var Pi3B = Board{Name: "Raspberry Pi 3 Model B", Filters: []string{"pi3"},
	DTB: "bcm2710-rpi-3-b.dtb", UpstreamDTB: "bcm2837-rpi-3-b.dtb", Kernel64: "kernel8.img", Kernel32: "kernel7.img"}

// Boot is what the firmware hands to the kernel.
type Boot struct {
	Config  string // the file it read: config.txt or tryboot.txt
	Kernel  string // files copied out of the SD card into the caller's directory
	DTB     string
	Initrd  string // "" when config.txt names no initramfs
	Cmdline string
	// Names are the files' names on the boot partition, for messages.
	KernelName, DTBName, InitrdName string
}

// Settings are the lines of a config file that apply to a board.
type Settings struct {
	ARM64     bool
	Kernel    string
	Initramfs string
	Cmdline   string // the command line file
	DTB       string // device_tree=
	Upstream  bool
}

// Parse reads a config.txt for board b. Lines in sections whose filter
// does not apply are skipped; the last value of a setting wins.
func Parse(config string, b Board) (Settings, error) {
	s := Settings{Cmdline: "cmdline.txt"}
	active := true
	sc := bufio.NewScanner(strings.NewReader(config))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			f := strings.ToLower(strings.Trim(line, "[]"))
			active = f == "all" || contains(b.Filters, f)
			continue
		}
		if !active {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "initramfs "); ok {
			// Debian's hook writes no address: the firmware then puts it
			// after the kernel, as with followkernel.
			f := strings.Fields(rest)
			if len(f) < 1 || len(f) > 2 || len(f) == 2 && f[1] != "followkernel" {
				return s, fmt.Errorf("config line %d %q: this model reads only `initramfs <file> [followkernel]`", n, line)
			}
			s.Initramfs = f[0]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); k {
		case "arm_64bit":
			s.ARM64 = v == "1"
		case "kernel":
			s.Kernel = v
		case "cmdline":
			s.Cmdline = v
		case "device_tree":
			s.DTB = v
		case "upstream_kernel":
			s.Upstream = v == "1"
		}
	}
	return s, sc.Err()
}

// Read boots board b from the SD card image disk: it reads the config file
// of this boot from the card's first partition and copies the files it
// names into dir.
func Read(disk string, b Board, tryboot bool, dir string) (Boot, error) {
	off, err := bootPartition(disk)
	if err != nil {
		return Boot{}, err
	}
	bt := Boot{Config: "config.txt"}
	if tryboot {
		bt.Config = "tryboot.txt"
	}
	cfg, err := mtype(disk, off, bt.Config)
	if err != nil {
		return bt, err
	}
	s, err := Parse(string(cfg), b)
	if err != nil {
		return bt, fmt.Errorf("%s: %w", bt.Config, err)
	}
	bt.KernelName = s.Kernel
	if bt.KernelName == "" {
		bt.KernelName = b.Kernel32
		if s.ARM64 {
			bt.KernelName = b.Kernel64
		}
	}
	bt.DTBName = s.DTB
	if bt.DTBName == "" {
		bt.DTBName = b.DTB
		if s.Upstream {
			bt.DTBName = b.UpstreamDTB
		}
	}
	bt.InitrdName = s.Initramfs
	cmdline, err := mtype(disk, off, s.Cmdline)
	if err != nil {
		return bt, err
	}
	bt.Cmdline = strings.TrimSpace(string(cmdline))
	for _, f := range []struct{ name, dst string }{{bt.KernelName, "kernel"}, {bt.DTBName, "dtb"}, {bt.InitrdName, "initrd"}} {
		if f.name == "" {
			continue
		}
		data, err := mtype(disk, off, f.name)
		if err != nil {
			return bt, fmt.Errorf("%s names %s: %w", bt.Config, f.name, err)
		}
		p := filepath.Join(dir, f.dst)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return bt, err
		}
		switch f.dst {
		case "kernel":
			bt.Kernel = p
		case "dtb":
			bt.DTB = p
		case "initrd":
			bt.Initrd = p
		}
	}
	return bt, nil
}

// bootPartition is the offset of the card's first partition, which the
// firmware reads as FAT.
func bootPartition(disk string) (int64, error) {
	f, err := os.Open(disk)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	parts, err := blkdev.ReadTable(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", disk, err)
	}
	for _, p := range parts {
		if p.Number == 1 {
			return p.Start, nil
		}
	}
	return 0, fmt.Errorf("%s: no partition 1: the firmware finds no boot partition", disk)
}

// ErrNoFile marks a file the boot partition does not have.
var ErrNoFile = errors.New("not on the boot partition")

// mtype reads a file from the FAT filesystem at byte off of disk with
// mtools (no mount: this machine's kernel may have no vfat). FAT names are
// case-insensitive, as the firmware reads them.
func mtype(disk string, off int64, name string) ([]byte, error) {
	cmd := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", disk, off), "::/"+strings.TrimPrefix(name, "/"))
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v: %s)", name, ErrNoFile, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
