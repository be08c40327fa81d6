package stage1

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
)

// ErrBootLayout marks a disk layout stage 1 cannot migrate (root on LVM,
// /boot on another disk).
var ErrBootLayout = errors.New("unsupported disk layout")

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	MajMin, Point, FSType, Source string
}

// Disk is where a mounted filesystem lives.
type Disk struct {
	Mount
	Disk      string   // whole disk device, e.g. /dev/mmcblk0
	Partition string   // partition device, e.g. /dev/mmcblk0p2 ("" if the whole disk)
	Modules   []string // kernel modules of the disk's driver chain
	SysDir    string   // sysfs directory of the partition (or disk)
}

func parseMountinfo(data string) []Mount {
	var out []Mount
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || len(f) < sep+3 {
			continue
		}
		out = append(out, Mount{MajMin: f[2], Point: unescapeMount(f[4]), FSType: f[sep+1], Source: f[sep+2]})
	}
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// mountOf returns the mount holding p (the last, i.e. topmost, longest match).
func mountOf(mounts []Mount, p string) (Mount, bool) {
	var best Mount
	found := false
	for _, m := range mounts {
		if m.Point == p || m.Point == "/" || strings.HasPrefix(p, m.Point+"/") {
			if !found || len(m.Point) >= len(best.Point) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// findDisk resolves the mount holding p to its disk through sysfs.
func (f files) findDisk(mounts []Mount, p string) (Disk, error) {
	m, ok := mountOf(mounts, p)
	if !ok {
		return Disk{}, fmt.Errorf("%w: no mount holds %s in /proc/self/mountinfo", ErrBootLayout, p)
	}
	dir, err := f.realpath("/sys/dev/block/" + m.MajMin)
	if err != nil && strings.HasPrefix(m.Source, "/dev/") {
		// btrfs reports an anonymous device number; its source names the partition
		dir, err = f.realpath("/sys/class/block/" + path.Base(m.Source))
	}
	if err != nil {
		return Disk{}, fmt.Errorf("%w: %s is mounted from %s (%s), which is not a block device: balena-migrate needs the system on a local disk", ErrBootLayout, m.Point, m.Source, m.MajMin)
	}
	if ents, _ := os.ReadDir(f.p(dir + "/slaves")); len(ents) > 0 {
		return Disk{}, fmt.Errorf("%w: %s is on %s, a device-mapper/RAID device (LVM, crypt, md): only plain partitions can be migrated", ErrBootLayout, m.Point, path.Base(dir))
	}
	d := Disk{Mount: m, SysDir: dir}
	diskDir := dir
	if f.exists(dir + "/partition") {
		diskDir = path.Dir(dir)
		d.Partition = "/dev/" + path.Base(dir)
	}
	d.Disk = "/dev/" + path.Base(diskDir)
	d.Modules = f.driverModules(diskDir)
	return d, nil
}

// diskIdentity reads what stage 2 checks before it flashes d's disk: the
// disk's size, its partition table id, where d's partition starts and the
// disk's world-wide id or serial number, if it has one. It refuses a disk
// with other than 512-byte logical sectors, which a balenaOS image cannot
// be flashed to.
func (f files) diskIdentity(d Disk) (blkdev.Identity, error) {
	fail := func(err error) (blkdev.Identity, error) {
		return blkdev.Identity{}, fmt.Errorf("%w: cannot record the identity of %s, which stage 2 checks before flashing: %w", ErrBootLayout, d.Disk, err)
	}
	diskDir, start, err := blkdev.SysDisk(f.p(d.SysDir))
	if err != nil {
		return fail(err)
	}
	size, err := blkdev.SysSize(diskDir)
	if err != nil {
		return fail(err)
	}
	dev, err := os.Open(f.p(d.Disk))
	if err != nil {
		return fail(err)
	}
	defer dev.Close()
	if err := blkdev.CheckSectorSize(dev); err != nil {
		return blkdev.Identity{}, fmt.Errorf("%w: %w: this disk cannot be migrated", ErrBootLayout, err)
	}
	table, err := blkdev.TableID(dev)
	if err != nil {
		return fail(err)
	}
	return blkdev.Identity{Size: size, TableID: table, RootStart: start, Serial: blkdev.SysSerial(diskDir)}, nil
}

// driverModules lists the modules of the drivers from the disk up to its bus.
func (f files) driverModules(dir string) []string {
	var mods []string
	seen := map[string]bool{}
	for d := dir; d != "/sys/devices" && d != "/" && d != "."; d = path.Dir(d) {
		mod, err := f.realpath(d + "/driver/module")
		if err != nil {
			mod, err = f.realpath(d + "/device/driver/module")
		}
		if err == nil && !seen[path.Base(mod)] {
			seen[path.Base(mod)] = true
			mods = append(mods, path.Base(mod))
		}
	}
	return mods
}

// BootLayout is where the system and its boot files live.
type BootLayout struct {
	Root    Disk
	Boot    Disk
	BootDir string // /boot or /boot/firmware
}

// detectLayout finds the disks of / and the boot directory bootDir and
// insists they are the same: stage 2 overwrites one disk.
func (f files) detectLayout(bootDir string) (BootLayout, error) {
	data, err := f.read("/proc/self/mountinfo")
	if err != nil {
		return BootLayout{}, fmt.Errorf("read /proc/self/mountinfo: %w: is /proc mounted?", err)
	}
	mounts := parseMountinfo(string(data))
	l := BootLayout{BootDir: bootDir}
	if l.Root, err = f.findDisk(mounts, "/"); err != nil {
		return BootLayout{}, err
	}
	if l.Boot, err = f.findDisk(mounts, l.BootDir); err != nil {
		return BootLayout{}, err
	}
	if l.Root.Disk != l.Boot.Disk {
		return BootLayout{}, fmt.Errorf("%w: %s is on %s but / is on %s: both must be on the disk that gets flashed", ErrBootLayout, l.BootDir, l.Boot.Disk, l.Root.Disk)
	}
	return l, nil
}
