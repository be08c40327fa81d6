package blkdev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size returns the size of a block device (BLKGETSIZE64) or of a regular file.
func Size(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return st.Size(), nil
	}
	var n uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64 %s: %w", f.Name(), e)
	}
	return int64(n), nil
}

// ImageSectorSize is the sector size every balenaOS image is laid out in:
// its partition tables count 512-byte sectors.
const ImageSectorSize = 512

// ErrSectorSize marks a disk whose logical sectors are not ImageSectorSize
// bytes: the kernel would read a flashed image's partition table in its own
// sectors and find every partition in the wrong place.
var ErrSectorSize = errors.New("the disk's logical sectors are not 512 bytes")

// LogicalSectorSize is the sector size the kernel addresses the block
// device f in (BLKSSZGET); a regular file is ImageSectorSize.
func LogicalSectorSize(f *os.File) (int, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return ImageSectorSize, nil
	}
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, fmt.Errorf("BLKSSZGET %s: %w", f.Name(), err)
	}
	return n, nil
}

// CheckSectorSize refuses a disk (open as f) that an image laid out in
// 512-byte sectors cannot be flashed to.
func CheckSectorSize(f *os.File) error {
	n, err := LogicalSectorSize(f)
	if err != nil {
		return err
	}
	if n != ImageSectorSize {
		return fmt.Errorf("%s has %d-byte logical sectors: %w; balenaOS images use 512-byte sectors, so after flashing the kernel would look for every partition %d times too far in", f.Name(), n, ErrSectorSize, n/ImageSectorSize)
	}
	return nil
}

// FlushBuffers drops the buffer cache of a block device (BLKFLSBUF); a no-op
// for regular files.
func FlushBuffers(f *os.File) error {
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeDevice == 0 {
		return err
	}
	return unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
}

// RereadPartitions asks the kernel to re-read the partition table (BLKRRPART).
func RereadPartitions(f *os.File) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKRRPART, 0); e != 0 {
		return fmt.Errorf("BLKRRPART %s: %w", f.Name(), e)
	}
	return nil
}

// AddPartition tells the kernel about partition p of the disk open as f (BLKPG).
func AddPartition(f *os.File, p Partition) error {
	return blkpg(f, unix.BLKPG_ADD_PARTITION, p)
}

// DeletePartition makes the kernel forget partition p.Number of the disk (BLKPG).
func DeletePartition(f *os.File, p Partition) error {
	return blkpg(f, unix.BLKPG_DEL_PARTITION, Partition{Number: p.Number})
}

func blkpg(f *os.File, op int32, p Partition) error {
	part := unix.BlkpgPartition{Start: p.Start, Length: p.Length, Pno: int32(p.Number)}
	arg := unix.BlkpgIoctlArg{Op: op, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); e != 0 {
		what := map[int32]string{unix.BLKPG_ADD_PARTITION: "add", unix.BLKPG_DEL_PARTITION: "delete"}[op]
		return fmt.Errorf("BLKPG %s partition %d of %s: %w", what, p.Number, f.Name(), e)
	}
	return nil
}

// PartitionNode names partition n of disk: /dev/sda → /dev/sda1,
// /dev/mmcblk0 → /dev/mmcblk0p1, /dev/loop3 → /dev/loop3p1.
func PartitionNode(disk string, n int) string {
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// Logf receives progress lines.
type Logf func(format string, args ...any)

// MakeNodes makes sure every partition in parts (extended containers aside)
// has a device node with the geometry of parts: it re-reads the table with
// BLKRRPART; where that fails (a busy disk, a kernel that does not scan this
// device) it adds missing partitions with BLKPG and replaces ones the kernel
// still knows from the old table with other offsets; it creates missing /dev
// nodes from sysfs. It returns the node of each partition number.
func MakeNodes(ctx context.Context, disk string, parts []Partition, log Logf) (map[int]string, error) {
	f, err := os.Open(disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	scanned := true
	if err := RereadPartitions(f); err != nil {
		scanned = false
		log("%v; setting partitions up with BLKPG", err)
	}
	settle(ctx, log)
	// BLKRRPART is synchronous; give sysfs one moment for all partitions.
	deadline := time.Now()
	if scanned {
		deadline = deadline.Add(time.Second)
	}
	nodes := make(map[int]string)
	for _, p := range parts {
		if p.Extended {
			continue
		}
		node := PartitionNode(disk, p.Number)
		if err := ensurePartition(ctx, f, sysPath(node), p, deadline, log); err != nil {
			return nil, err
		}
		if !waitFor(ctx, node, 500*time.Millisecond) {
			if err := mknodFromSys(sysPath(node), node); err != nil {
				return nil, err
			}
		}
		nodes[p.Number] = node
	}
	return nodes, nil
}

// settle waits for udev to finish the events queued so far, where udev
// runs (the initramfs starts it): the close of the flashed disk makes it
// re-read the table, which removes and re-adds every partition.
func settle(ctx context.Context, log Logf) {
	path, err := exec.LookPath("udevadm")
	if err != nil {
		return
	}
	if out, err := exec.CommandContext(ctx, path, "settle", "--timeout=15").CombinedOutput(); err != nil {
		log("udevadm settle: %v: %s", err, strings.TrimSpace(string(out)))
	}
}

func sysPath(node string) string { return filepath.Join("/sys/class/block", filepath.Base(node)) }

// ensurePartition makes the kernel's partition p.Number, whose sysfs
// directory is sys, match p.
//
// udev re-reads a disk's table when a writer closes it (as stage 2 does
// after flashing), so a partition can vanish and come back while it is
// looked at: such a read, or a BLKPG that meets the re-added partition, is
// tried again for up to vanishWait instead of failing a flashed disk.
func ensurePartition(ctx context.Context, disk *os.File, sys string, p Partition, deadline time.Time, log Logf) error {
	name := filepath.Base(sys)
	giveUp := time.Now().Add(vanishWait)
	retry := func(err error) bool {
		if time.Now().After(giveUp) || ctx.Err() != nil {
			return false
		}
		log("%s changed under us (%v): udev may be re-reading the table; looking again", name, err)
		time.Sleep(100 * time.Millisecond)
		return true
	}
	for {
		if waitFor(ctx, sys, time.Until(deadline)) {
			start, length, err := sysGeometry(sys)
			if err != nil && vanished(err) && retry(err) {
				continue
			}
			if err != nil {
				return err
			}
			if start == p.Start && length == p.Length {
				return nil
			}
			log("%s is still the old partition (start %d, %d bytes); replacing it with BLKPG", name, start, length)
			if err := DeletePartition(disk, p); err != nil {
				if vanished(err) && retry(err) {
					continue
				}
				return err
			}
		} else {
			log("kernel has no %s; adding it with BLKPG (start %d, %d bytes)", name, p.Start, p.Length)
		}
		if err := AddPartition(disk, p); err != nil {
			if errors.Is(err, unix.EBUSY) && retry(err) {
				continue
			}
			return err
		}
		if !waitFor(ctx, sys, 2*time.Second) {
			return fmt.Errorf("partition %s did not appear in /sys/class/block", name)
		}
		return nil
	}
}

// vanishWait is how long a partition that vanishes while it is looked at
// is waited for.
const vanishWait = 15 * time.Second

// vanished reports an error of a partition that went away mid-look.
func vanished(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)
}

// sysGeometry reads a partition's start and length in bytes from sysfs.
func sysGeometry(sys string) (start, length int64, err error) {
	var v [2]int64
	for i, name := range []string{"start", "size"} {
		b, err := os.ReadFile(filepath.Join(sys, name))
		if err != nil {
			return 0, 0, fmt.Errorf("partition geometry: %w", err)
		}
		if v[i], err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("partition geometry %s/%s: %w", sys, name, err)
		}
	}
	return v[0] * 512, v[1] * 512, nil
}

// mknodFromSys creates node as a block device with the numbers sysfs reports.
func mknodFromSys(sys, node string) error {
	b, err := os.ReadFile(filepath.Join(sys, "dev"))
	if err != nil {
		return fmt.Errorf("create %s: %w", node, err)
	}
	maj, min, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	ma, err1 := strconv.Atoi(maj)
	mi, err2 := strconv.Atoi(min)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("create %s: bad %s/dev %q", node, sys, b)
	}
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(ma), uint32(mi)))); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mknod %s: %w", node, err)
	}
	return nil
}

func waitFor(ctx context.Context, path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
