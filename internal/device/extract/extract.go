// Package extract is `balena-migrate extract` (docs/device.md, extract): it pulls the
// balenaOS image and the grub files out of an x86 flasher image (.img or
// .zip) with Go readers for the partition table, ext4 and FAT — no mounting,
// no root — and points the migrate config at what it wrote.
//
// Where things come from:
//   - the image: /opt/*.balenaos-img or /opt/*.resinos-img on the flasher's
//     ext4 root partition, written gzip-compressed;
//   - grub.cfg: grub.cfg_internal on the flasher's boot partition (the config
//     the flasher installs), else the grub.cfg on the image's own resin-boot;
//   - boot.img / core.img: the MBR boot code and the sectors between the MBR
//     and the first partition, from the image when it carries a boot loader
//     there, else from the flasher.
package extract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/ext4"
	"github.com/fleetmig/balena-migrate/internal/device/fat"
)

// ErrNotFound marks a flasher image without what extract looks for.
var ErrNotFound = errors.New("not found in the flasher image")

// Logf receives progress lines.
type Logf func(format string, args ...any)

// Options say what to extract where. Empty outputs are skipped.
type Options struct {
	Flasher   string // .img or .zip
	Image     string // OUT.img.gz (required)
	GrubCfg   string
	GrubBoot  string
	GrubCore  string
	BalenaCfg string // config.json to record as BALENA_CONFIG
	Config    string // migrate config to create or update
	TmpDir    string // for unpacking zips; the directory of Image when empty
	Log       Logf
}

// Result describes what was written.
type Result struct {
	ImageSource string // path of the image inside the flasher's root partition
	ImageSize   int64  // uncompressed
	ImageSHA256 string // of the uncompressed image
	GrubCfgFrom string
}

func openParts(r io.ReaderAt) ([]blkdev.Partition, error) {
	parts, err := blkdev.ReadTable(r)
	if err != nil {
		return nil, fmt.Errorf("partition table: %w", err)
	}
	return parts, nil
}

// findImage looks in every ext4 partition for /opt/*.balenaos-img or *.resinos-img.
func findImage(r io.ReaderAt, parts []blkdev.Partition) (*ext4.File, string, error) {
	for _, p := range parts {
		if p.Extended {
			continue
		}
		fsys, err := ext4.Open(io.NewSectionReader(r, p.Start, p.Length))
		if err != nil {
			continue
		}
		entries, err := fsys.ReadDir("/opt")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("partition %d: /opt: %w", p.Number, err)
		}
		for _, e := range entries {
			if !e.IsDir && (strings.HasSuffix(e.Name, ".balenaos-img") || strings.HasSuffix(e.Name, ".resinos-img")) {
				name := path.Join("/opt", e.Name)
				f, err := fsys.Open(name)
				if err != nil {
					return nil, "", fmt.Errorf("partition %d: %w", p.Number, err)
				}
				return f, name, nil
			}
		}
	}
	return nil, "", fmt.Errorf("/opt/*.balenaos-img or *.resinos-img: %w", ErrNotFound)
}

// fatFile returns the first of names found on any FAT partition of r (or,
// with label set, only on the partition with that label).
func fatFile(r io.ReaderAt, parts []blkdev.Partition, label string, names ...string) ([]byte, string, error) {
	for _, p := range parts {
		if p.Extended {
			continue
		}
		sec := io.NewSectionReader(r, p.Start, p.Length)
		if label != "" {
			if got, err := blkdev.Probe(sec, 0); err != nil || !strings.EqualFold(got.Label, label) {
				continue
			}
		}
		fsys, err := fat.Open(sec)
		if err != nil {
			continue
		}
		for _, n := range names {
			data, err := fsys.ReadFile(n)
			if err == nil {
				return data, n, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, "", fmt.Errorf("partition %d: %s: %w", p.Number, n, err)
			}
		}
	}
	return nil, "", fmt.Errorf("%s: %w", strings.Join(names, " or "), ErrNotFound)
}

// grubCfg finds the grub.cfg the installed system needs.
func grubCfg(flash io.ReaderAt, flashParts []blkdev.Partition, img io.ReaderAt) ([]byte, string, error) {
	data, name, err := fatFile(flash, flashParts, "", "grub.cfg_internal", "EFI/BOOT/grub.cfg_internal", "grub/grub.cfg_internal")
	if err == nil {
		return data, "flasher boot partition: " + name, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, "", err
	}
	imgParts, perr := openParts(img)
	if perr != nil {
		return nil, "", fmt.Errorf("balenaOS image: %w", perr)
	}
	data, name, err = fatFile(img, imgParts, "resin-boot", "EFI/BOOT/grub.cfg", "grub/grub.cfg", "boot/grub/grub.cfg", "grub.cfg")
	if err != nil {
		return nil, "", fmt.Errorf("grub.cfg for the installed system (grub.cfg_internal on the flasher, or on the image's resin-boot): %w", err)
	}
	return data, "image resin-boot: " + name, nil
}

// bootLoader returns boot.img (the MBR sector) and core.img (the sectors up to
// the first partition, trailing zero sectors dropped) of r, or false when r
// has no boot code there.
func bootLoader(r io.ReaderAt, parts []blkdev.Partition) (boot, core []byte, ok bool, err error) {
	first := int64(1 << 40)
	for _, p := range parts {
		first = min(first, p.Start)
	}
	if first <= blkdev.SectorSize || first > 64<<20 {
		return nil, nil, false, nil
	}
	buf := make([]byte, first)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, nil, false, fmt.Errorf("read boot sectors: %w", err)
	}
	boot, core = buf[:blkdev.SectorSize], bytes.TrimRight(buf[blkdev.SectorSize:], "\x00")
	if len(core) == 0 || bytes.Count(boot[:440], []byte{0}) == 440 {
		return nil, nil, false, nil
	}
	core = buf[blkdev.SectorSize : blkdev.SectorSize+(len(core)+blkdev.SectorSize-1)/blkdev.SectorSize*blkdev.SectorSize]
	return boot, core, true, nil
}
