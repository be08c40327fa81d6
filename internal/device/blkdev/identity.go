package blkdev

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Identity tells one disk from another across reboots, where kernel names
// (sda, sdb) may swap: its size, its partition table's id, where the
// partition holding the old root starts and, where the disk has one, its
// world-wide id or serial number, the one part a cloned disk (same table,
// same file systems) does not share.
type Identity struct {
	Size      int64  // bytes
	TableID   string // "mbr:1a2b3c4d" (disk signature) or "gpt:<disk GUID>"
	RootStart int64  // byte offset of the root partition
	Serial    string // "wwid:…" or "serial:…"; "" when the disk reports neither
}

func (id Identity) String() string {
	s := fmt.Sprintf("%d bytes, table %s, root partition at byte %d", id.Size, id.TableID, id.RootStart)
	if id.Serial != "" {
		s += ", " + id.Serial
	}
	return s
}

// SysSerial reads what names the physical disk whose sysfs directory is
// diskDir: its world-wide id (SCSI/SATA VPD page 0x83, NVMe namespace),
// else its serial number (virtio, MMC/SD card CID, NVMe controller), as
// "wwid:…" or "serial:…"; "" when the disk reports neither.
func SysSerial(diskDir string) string {
	for _, f := range []struct{ name, kind string }{
		{"wwid", "wwid"}, {"device/wwid", "wwid"}, {"serial", "serial"}, {"device/serial", "serial"},
	} {
		b, err := os.ReadFile(filepath.Join(diskDir, f.name))
		if v := strings.Join(strings.Fields(string(b)), " "); err == nil && v != "" {
			return f.kind + ":" + v
		}
	}
	return ""
}

// TableID reads the id of the partition table at the start of r: the GPT
// disk GUID, else the MBR disk signature.
func TableID(r io.ReaderAt) (string, error) {
	head := make([]byte, 2*SectorSize)
	if _, err := r.ReadAt(head, 0); err != nil {
		return "", fmt.Errorf("read the partition table: %w", err)
	}
	if head[510] != 0x55 || head[511] != 0xAA {
		return "", ErrNoTable
	}
	if gpt := head[SectorSize:]; bytes.Equal(gpt[:8], []byte("EFI PART")) {
		return "gpt:" + hex.EncodeToString(gpt[56:72]), nil
	}
	return fmt.Sprintf("mbr:%08x", binary.LittleEndian.Uint32(head[440:444])), nil
}

// SysDisk finds, from the sysfs directory of a partition or disk (as
// /sys/dev/block/MAJ:MIN resolves), the disk's sysfs directory and the
// partition's start in bytes (0 for a whole disk).
func SysDisk(sysDir string) (diskDir string, start int64, err error) {
	if _, err := os.Stat(filepath.Join(sysDir, "partition")); err != nil {
		return sysDir, 0, nil
	}
	sectors, err := sysNumber(filepath.Join(sysDir, "start"))
	return filepath.Dir(sysDir), sectors * SectorSize, err
}

// SysSize reads a disk's size in bytes from its sysfs directory.
func SysSize(diskDir string) (int64, error) {
	sectors, err := sysNumber(filepath.Join(diskDir, "size"))
	return sectors * SectorSize, err
}

// sysNumber reads a sysfs file holding one number (sizes are in 512-byte
// units whatever the sector size).
func sysNumber(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}
