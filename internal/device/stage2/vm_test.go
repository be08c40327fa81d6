package stage2_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

const home = "/home/pi/migrate"

// diskSerial is the serial number of the old disk in the VMs (the serial
// of its virtio disk), which stage 1 records with its identity.
const diskSerial = "BMTEST-OLD-0001"

// vmFixture is an "old OS" disk with a migration directory, the balenaOS
// image it carries, and the stage-2 config that points at it.
type vmFixture struct {
	dir      string
	image    testimg.Image // the uncompressed balenaOS test image
	disk     string
	cfg      s2config.Config
	config   []byte // config.json
	wifi     map[string][]byte
	backup   []byte
	diskHash string // SHA-256 of the whole disk before the boot
	diskHead []byte // its first MiB: boot sector, table, gap
	gz       []byte // the image file on the old root
	grubCfg  []byte
	bootImg  []byte
	coreImg  []byte
	extra    []string      // more disks after it: vdb, vdc, …
	first    []string      // disks before it, which shift its name (vdb, …)
	firstSer []string      // serial numbers of those
	reboot   bool          // run stage 2 without --no-reboot
	gpt      bool          // flash a generic-amd64-shaped GPT image
	early    bool          // run stage2 --early first, as the init-top script does
	rootDev  string        // the old root's device in the VM when not the disk's first partition
	kernel   vmtest.Kernel // FindKernel's when zero
	modules  []string      // more modules the init loads
	qemuArgs []string      // more qemu arguments
	diskOpts string        // more -drive options of the old disk
	serial   string        // the old disk's serial number
	freeze   bool          // stop stage 2 once it holds the watchdog
	delay    time.Duration // between the init-top step and mounting the old root
	// patch changes the image file after it is built, before it is
	// compressed and its SHA-256 recorded.
	patch func(t *testing.T, img testimg.Image)
	// build makes the image instead of testimg's shapes.
	build func(t *testing.T, path string) testimg.Image
	// blkdebug is a qemu blkdebug rules file put in front of the old disk:
	// it injects I/O errors the guest kernel sees as the disk's own.
	blkdebug string
}

// newVMFixture builds the fixture; setup funcs may change the files that go
// into the migration directory before the disk is built.
func newVMFixture(t *testing.T, corrupt bool, setup ...func(*vmFixture)) *vmFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("VM test skipped in -short mode")
	}
	fx := &vmFixture{dir: t.TempDir(), config: []byte(`{"uuid":"0123abcd","deviceType":"genericx86-64"}`),
		wifi: map[string][]byte{"resin-wifi-01": []byte("[connection]\nid=home\n"), "resin-wifi-02": []byte("[connection]\nid=office\n")}}
	fx.backup = make([]byte, 256<<10)
	rand.Read(fx.backup)
	fx.grubCfg = []byte("set default=0\nmenuentry balenaOS {}\n")
	fx.bootImg = bytes.Repeat([]byte{0xB0}, 512)
	fx.coreImg = bytes.Repeat([]byte("core.img"), 4000) // 32000 bytes, before resin-boot at 1 MiB
	for _, f := range setup {
		f(fx)
	}
	var err error
	shape := testimg.BalenaOS
	if fx.gpt {
		shape = testimg.GenericAMD64
	}
	if fx.build != nil {
		fx.image = fx.build(t, filepath.Join(fx.dir, "balena.img"))
	} else if fx.image, err = shape(filepath.Join(fx.dir, "balena.img")); err != nil {
		t.Fatal(err)
	}
	if fx.patch != nil {
		fx.patch(t, fx.image)
	}
	gz := filepath.Join(fx.dir, "balena.img.gz")
	sha, err := testimg.Gzip(fx.image.Path, gz)
	if err != nil {
		t.Fatal(err)
	}
	if corrupt { // same SHA in the config, one flipped bit in the image
		raw, _ := os.ReadFile(fx.image.Path)
		raw[20*testimg.MiB+12345] ^= 0x10
		bad := filepath.Join(fx.dir, "bad.img")
		os.WriteFile(bad, raw, 0o644)
		if _, err := testimg.Gzip(bad, gz); err != nil {
			t.Fatal(err)
		}
	}
	gzData, _ := os.ReadFile(gz)
	files := map[string][]byte{home + "/balena.img.gz": gzData, home + "/config.json": fx.config, home + "/backup.tgz": fx.backup,
		home + "/grub.cfg": fx.grubCfg, home + "/boot.img": fx.bootImg, home + "/core.img": fx.coreImg}
	for n, d := range fx.wifi {
		files[home+"/"+n] = d
	}
	disk, err := testimg.OldOS(filepath.Join(fx.dir, "disk.img"), 128*testimg.MiB, files)
	if err != nil {
		t.Fatal(err)
	}
	fx.disk = disk.Path
	fx.diskHash, _ = testimg.SHA256File(fx.disk, -1)
	fx.gz = gzData
	raw, _ := os.ReadFile(fx.disk)
	fx.diskHead = raw[:testimg.MiB]
	fx.cfg = s2config.Default()
	fx.cfg.BootDev, fx.cfg.HomeDir, fx.cfg.ImageFile, fx.cfg.ImageSHA256 = "/dev/vda", home, "balena.img.gz", sha
	fx.cfg.BackupFile, fx.cfg.BalenaConfig = "backup.tgz", "config.json"
	fx.cfg.NetworkConfigs = []string{"resin-wifi-01", "resin-wifi-02"}
	fx.cfg.NoFlash = false
	fx.serial = diskSerial
	fx.setIdentity(t)
	return fx
}

// setIdentity records the old disk's identity in the stage-2 config, as
// stage 1 does.
func (fx *vmFixture) setIdentity(t *testing.T) {
	t.Helper()
	f, err := os.Open(fx.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	table, err := blkdev.TableID(f)
	if err != nil {
		t.Fatal(err)
	}
	fx.cfg.DiskSize, fx.cfg.DiskTableID, fx.cfg.RootPartStart = st.Size(), table, testimg.MiB
	fx.cfg.DiskSerial = "serial:" + diskSerial
}

// addDiskOpt adds a -drive option for the old disk.
func (fx *vmFixture) addDiskOpt(o string) {
	if fx.diskOpts != "" {
		o = "," + o
	}
	fx.diskOpts += o
}

// boot runs stage 2 in the VM on the fixture's disk.
func (fx *vmFixture) boot(t *testing.T) vmtest.Result {
	t.Helper()
	res, err := fx.bootErr(t)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, res.Console)
	}
	return res
}

// bootErr is boot returning the VM's error (ErrReset, a time-out).
func (fx *vmFixture) bootErr(t *testing.T) (vmtest.Result, error) {
	t.Helper()
	k := fx.kernel
	if k.Vmlinuz == "" {
		var err error
		if k, err = vmtest.FindKernel(); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(fx.dir, "balena-migrate")
	if err := vmtest.BuildBinary(context.Background(), "../../..", bin); err != nil {
		t.Fatal(err)
	}
	conf, err := fx.cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(fx.dir, "initrd.gz")
	root := fmt.Sprintf("/dev/vd%c1", 'a'+len(fx.first))
	if fx.rootDev != "" {
		root = fx.rootDev
	}
	ir := vmtest.Stage2Initramfs{Kernel: k, Binary: bin, Config: conf, RootDev: root, Reboot: fx.reboot, Early: fx.early,
		Modules: fx.modules, Freeze: fx.freeze, Delay: fx.delay}
	if err := ir.Write(initrd); err != nil {
		t.Fatal(err)
	}
	disk := fx.disk
	if fx.blkdebug != "" {
		disk = "blkdebug:" + fx.blkdebug + ":" + fx.disk
	}
	disks := append(append(append([]string{}, fx.first...), disk), fx.extra...)
	opts := make([]string, len(disks))
	opts[len(fx.first)] = fx.diskOpts
	serials := make([]string, len(disks))
	copy(serials, fx.firstSer)
	serials[len(fx.first)] = fx.serial
	res, err := vmtest.Boot(context.Background(), vmtest.VM{Kernel: k, Initrd: initrd, Disks: disks, DiskOptions: opts, DiskSerials: serials, Args: fx.qemuArgs})
	t.Logf("VM boot took %s", res.Duration.Round(100_000_000))
	if os.Getenv("VMTEST_CONSOLE") != "" {
		t.Logf("console:\n%s", res.Console)
	}
	return res, err
}

// The old system's disk is GPT (the harder case: its backup table sits at
// the end of the disk, past the MBR image written over it).
func TestVMStage2FlashesAndPlacesFiles(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false)
	fx.toGPT(t)
	fx.cfg.GrubInstall, fx.cfg.GrubBootType = s2config.GrubFlash, s2config.BootLegacy
	fx.cfg.GrubCfg, fx.cfg.GrubBootImg, fx.cfg.GrubCoreImg = "grub.cfg", "boot.img", "core.img"
	res := fx.boot(t)
	if res.ExitCode != 0 {
		t.Fatalf("stage 2 exit code %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	for _, want := range []string{"image verified", "point of no return", "flashed", "/s", "read back", "found resin-boot", "balenaOS installed"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	disk, _ := os.ReadFile(fx.disk)
	img, _ := os.ReadFile(fx.image.Path)
	boot, data := fx.image.Parts[0], fx.image.Parts[5]
	// Grub: boot code in the MBR, core.img from sector 1; the table stays.
	if !bytes.Equal(disk[:440], fx.bootImg[:440]) {
		t.Error("MBR boot code is not boot.img")
	}
	coreEnd := int64(512 + len(fx.coreImg))
	if !bytes.Equal(disk[512:coreEnd], fx.coreImg) {
		t.Error("core.img not at sector 1")
	}
	got, err := testimg.MReadFile(fx.disk, boot.Start, "grub/grub.cfg")
	if err != nil || !bytes.Equal(got, fx.grubCfg) {
		t.Errorf("resin-boot/grub/grub.cfg = %q, %v", got, err)
	}
	// Everything else outside resin-boot and resin-data is the image, byte for byte.
	for _, r := range [][2]int64{{440, 512}, {coreEnd, boot.Start}, {boot.End(), data.Start}, {data.End(), int64(len(img))}} {
		if !bytes.Equal(disk[r[0]:r[1]], img[r[0]:r[1]]) {
			t.Errorf("disk bytes %d..%d differ from the image", r[0], r[1])
		}
	}
	checkFile := func(what string, got []byte, err error, want []byte) {
		t.Helper()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %q (err %v), want %q", what, trim(got), err, trim(want))
		}
	}
	got, err = testimg.MReadFile(fx.disk, boot.Start, "config.json")
	checkFile("resin-boot/config.json", got, err, fx.config)
	for n, d := range fx.wifi {
		got, err := testimg.MReadFile(fx.disk, boot.Start, "system-connections/"+n)
		checkFile("resin-boot/system-connections/"+n, got, err, d)
	}
	got, err = testimg.MReadFile(fx.disk, boot.Start, "os-release")
	checkFile("resin-boot/os-release from the image", got, err, []byte("ID=balena-os\n"))

	fx.checkResinData(t, disk[data.Start:data.End()])
	if fs, _ := blkdev.Probe(bytes.NewReader(disk), boot.Start); fs.Label != "resin-boot" {
		t.Errorf("resin-boot label now %+v", fs)
	}
	// No table of the old system is left: wipefs sees the image's MBR only.
	out, err := exec.Command("wipefs", "--no-act", "--noheadings", "--output", "TYPE,OFFSET", fx.disk).CombinedOutput()
	if err != nil || strings.Join(strings.Fields(string(out)), " ") != "dos 0x1fe" {
		t.Errorf("wipefs on the flashed disk: %q (%v), want only the dos table", out, err)
	}
	if !strings.Contains(res.Console, "cleared the old backup GPT") {
		t.Error("console does not report the stale backup GPT")
	}
}

// A UEFI machine (GPT disk) gets a generic-amd64 image (GPT): stage 2
// flashes it, finds resin-boot and resin-data in the new GPT and fills them;
// the disk then holds the image's tables only.
func TestVMStage2FlashesGPTImage(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false, func(fx *vmFixture) { fx.gpt = true })
	fx.toGPT(t)
	res := fx.boot(t)
	if res.ExitCode != 0 {
		t.Fatalf("stage 2 exit code %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	for _, want := range []string{"image verified", "point of no return", "found resin-boot (vfat)", "found resin-data (ext4)", "balenaOS installed"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	disk, _ := os.ReadFile(fx.disk)
	img, _ := os.ReadFile(fx.image.Path)
	f, err := os.Open(fx.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, err := blkdev.CheckGPT(f, int64(len(img)))
	if err != nil || len(parts) != 5 || parts[0].Name != "resin-boot" || parts[4].Name != "resin-data" {
		t.Fatalf("the flashed disk's GPT: %+v %v", parts, err)
	}
	boot, data := fx.image.Parts[0], fx.image.Parts[4]
	for _, r := range [][2]int64{{0, boot.Start}, {boot.End(), data.Start}, {data.End(), int64(len(img))}} {
		if !bytes.Equal(disk[r[0]:r[1]], img[r[0]:r[1]]) {
			t.Errorf("disk bytes %d..%d differ from the image", r[0], r[1])
		}
	}
	got, err := testimg.MReadFile(fx.disk, boot.Start, "config.json")
	if err != nil || !bytes.Equal(got, fx.config) {
		t.Errorf("resin-boot/config.json = %q, %v", got, err)
	}
	fx.checkResinData(t, disk[data.Start:data.End()])
	// The old disk's backup GPT at its end is gone (wipefs looks there):
	// only the image's tables remain, its backup GPT where the image ends.
	out, err := exec.Command("wipefs", "--no-act", "--noheadings", "--output", "TYPE,OFFSET", fx.disk).CombinedOutput()
	if err != nil || strings.Join(strings.Fields(string(out)), " ") != "gpt 0x200 PMBR 0x1fe" {
		t.Errorf("wipefs on the flashed disk: %q (%v), want the image's GPT and protective MBR only", out, err)
	}
	if string(disk[len(img)-512:len(img)-504]) != "EFI PART" {
		t.Error("no backup GPT header where the image ends")
	}
}

// toGPT rewrites the old disk's MBR as a GPT with the same partition, as on
// a UEFI machine, and records the disk's new identity as stage 1 would.
func (fx *vmFixture) toGPT(t *testing.T) {
	t.Helper()
	defer fx.setIdentity(t)
	disk := fx.disk
	dump, err := exec.Command("sfdisk", "--dump", disk).Output()
	if err != nil {
		t.Fatal(err)
	}
	var part string
	for _, l := range strings.Split(string(dump), "\n") {
		if strings.HasPrefix(l, disk+"1 :") {
			part = strings.TrimPrefix(l, disk+"1 :")
		}
	}
	start, size, _ := strings.Cut(part, ",")
	size, _, _ = strings.Cut(size, ",")
	script := "label: gpt\n" + strings.TrimSpace(start) + ", " + strings.TrimSpace(size) + ", type=L\n"
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", "--wipe", "never", disk)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %q: %v %s", script, err, out)
	}
	out, _ := exec.Command("wipefs", "--no-act", "--noheadings", "--output", "TYPE", disk).CombinedOutput()
	if got := strings.Join(strings.Fields(string(out)), " "); !strings.Contains(got, "gpt") {
		t.Fatalf("old disk is not GPT: wipefs says %q", got)
	}
}

func TestVMStage2CorruptImageLeavesDiskUntouched(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, true)
	res := fx.boot(t)
	if res.ExitCode == 0 {
		t.Errorf("exit code 0 for a corrupt image\nconsole:\n%s", res.Console)
	}
	if !strings.Contains(res.Console, "SHA-256 mismatch") || !strings.Contains(res.Console, "ERROR: ") {
		t.Errorf("console does not report the mismatch:\n%s", res.Console)
	}
	fx.oldSystemKept(t, "SHA-256 mismatch")
}

func TestVMStage2NoFlashLeavesDiskUntouched(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false)
	fx.cfg.NoFlash = true
	// A log drive (vdb, whole-disk ext4) and an original boot partition
	// (vdc, whole-disk vfat) whose config.txt stage 2 restores.
	logDisk := filepath.Join(fx.dir, "log.img")
	logFS, err := testimg.Content(fx.dir, 8*testimg.MiB, testimg.Part{FS: "ext4", Label: "logs"})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(logDisk, logFS, 0o644)
	bootDisk := filepath.Join(fx.dir, "boot.img")
	bootFS, err := testimg.Content(fx.dir, 8*testimg.MiB, testimg.Part{FS: "vfat", Label: "boot",
		Files: map[string][]byte{"config.txt": []byte("initramfs balena followkernel\n"), "config.txt.bak": []byte("# original\n")}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bootDisk, bootFS, 0o644)
	fx.extra = []string{logDisk, bootDisk}
	fx.cfg.LogDrive, fx.cfg.LogFSType = "/dev/vdb", "ext4"
	fx.cfg.MountBoot, fx.cfg.OrigBootPart, fx.cfg.OrigBootFSType = true, "/dev/vdc", "vfat"
	fx.cfg.RestoreBootFiles = []s2config.RestorePair{{Backup: "config.txt.bak", Original: "config.txt"}}
	res := fx.boot(t)
	if res.ExitCode != 0 {
		t.Errorf("exit code %d with NO_FLASH=TRUE\nconsole:\n%s", res.ExitCode, res.Console)
	}
	if got, err := testimg.MReadFile(bootDisk, 0, "config.txt"); err != nil || string(got) != "# original\n" {
		t.Errorf("config.txt not restored: %q, %v", got, err)
	}
	if log, err := testimg.DebugfsCat(logDisk, "/migrate.log"); err != nil || !bytes.Contains(log, []byte("image verified")) ||
		!bytes.Contains(log, []byte("NO_FLASH=TRUE")) || !bytes.Contains(log, []byte("handing back")) {
		t.Errorf("log drive migrate.log: %v\n%s", err, log)
	}
	if !strings.Contains(res.Console, "image verified") || !strings.Contains(res.Console, "NO_FLASH=TRUE") {
		t.Errorf("console:\n%s", res.Console)
	}
	if h, _ := testimg.SHA256File(fx.disk, -1); h != fx.diskHash {
		t.Error("disk changed with NO_FLASH=TRUE")
	}
}

// checkResinData checks backup, log and the image's own files on resin-data.
func (fx *vmFixture) checkResinData(t *testing.T, data []byte) {
	t.Helper()
	part := filepath.Join(fx.dir, "resin-data.img")
	os.WriteFile(part, data, 0o644)
	for name, want := range map[string][]byte{"/backup.tgz": fx.backup, "/resin-data/readme": []byte("data partition\n")} {
		if got, err := testimg.DebugfsCat(part, name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("resin-data%s: got %q (err %v), want %q", name, trim(got), err, trim(want))
		}
	}
	log, err := testimg.DebugfsCat(part, "/balena-migrate.log")
	if err != nil || !bytes.Contains(log, []byte("balenaOS installed")) || !bytes.Contains(log, []byte("] INFO: ")) {
		t.Errorf("resin-data/balena-migrate.log: %v\n%s", err, log)
	}
	if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
		t.Errorf("e2fsck resin-data: %v\n%s", err, out)
	}
}

// Without --no-reboot, TERM_EXIT="reboot -f" reboots after a bad image —
// with the disk untouched, so the old system comes back.
func TestVMStage2TermExitRebootAfterBadImage(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, true)
	fx.cfg.TermExit = s2config.TermExit{Reboot: true}
	fx.reboot = true
	res := fx.boot(t)
	if !res.Rebooted || !strings.Contains(res.Console, "SHA-256 mismatch") || !strings.Contains(res.Console, "INFO: rebooting") {
		t.Errorf("rebooted=%v exit=%d\nconsole:\n%s", res.Rebooted, res.ExitCode, res.Console)
	}
	fx.oldSystemKept(t, "SHA-256 mismatch")
}

// oldSystemKept checks a disk stage 2 did not flash: boot sector, table and
// gap as before, the old root's filesystem clean with the image still on
// it, and stage 2's log next to it saying why it stopped.
func (fx *vmFixture) oldSystemKept(t *testing.T, why string) {
	t.Helper()
	disk, err := os.ReadFile(fx.disk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[:testimg.MiB], fx.diskHead) {
		t.Error("the first MiB of the disk changed: it was flashed")
	}
	part := filepath.Join(fx.dir, "old-root.img")
	os.WriteFile(part, disk[testimg.MiB:int64(len(disk))-testimg.MiB], 0o644)
	if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
		t.Errorf("e2fsck old root: %v\n%s", err, out)
	}
	if gz, err := testimg.DebugfsCat(part, home+"/balena.img.gz"); err != nil || !bytes.Equal(gz, fx.gz) {
		t.Errorf("the image on the old root changed: %v", err)
	}
	log, err := testimg.DebugfsCat(part, home+"/balena-migrate-stage2.log")
	if err != nil || !bytes.Contains(log, []byte(why)) || !bytes.Contains(log, []byte("the disk is untouched")) {
		t.Errorf("stage-2 log on the old root: %v\n%s", err, log)
	}
}

func trim(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// A second disk ahead of the old one between stage 1 and stage 2: BOOT_DEV
// (/dev/vda when stage 1 ran) now names the wrong disk. Stage 2 finds the
// disk from the old root and its recorded identity, flashes that one and
// leaves the other byte for byte; a disk whose identity does not match is
// not flashed at all. A clone of the old disk (same table, same file
// systems, so the initramfs may mount the old root from either) is told
// apart by its serial number.
func TestVMStage2DiskNamesSwapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tableID string // "" keeps the recorded one
		clone   bool   // the other disk is a clone, and the old root is mounted from it
	}{{"flashes the old root's disk", "", false}, {"refuses another identity", "mbr:0badd15c", false},
		{"refuses a clone with another serial", "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newVMFixture(t, false)
			other := filepath.Join(fx.dir, "other.img")
			data := make([]byte, 64*testimg.MiB)
			rand.Read(data)
			if tc.clone {
				data, _ = os.ReadFile(fx.disk)
				fx.firstSer = []string{"BMTEST-CLONE-0002"}
				fx.rootDev = "/dev/vda1"
			}
			os.WriteFile(other, data, 0o644)
			otherHash, _ := testimg.SHA256File(other, -1)
			fx.first = []string{other}
			if tc.tableID != "" {
				fx.cfg.DiskTableID = tc.tableID
			}
			res := fx.boot(t)
			if h, _ := testimg.SHA256File(other, -1); h != otherHash && !tc.clone {
				t.Fatal("the other disk (now /dev/vda) changed")
			}
			if tc.tableID != "" || tc.clone {
				if res.ExitCode != 1 || !strings.Contains(res.Console, "not the disk stage 1 recorded") {
					t.Fatalf("exit %d\nconsole:\n%s", res.ExitCode, res.Console)
				}
				if tc.clone {
					if !strings.Contains(res.Console, "serial:BMTEST-CLONE-0002") {
						t.Errorf("the refusal does not name the clone's serial:\n%s", res.Console)
					}
					// Its old root holds stage 2's log now; nothing else changed.
					if got, _ := os.ReadFile(other); !bytes.Equal(got[:testimg.MiB], fx.diskHead) {
						t.Error("the clone was flashed")
					}
					if h, _ := testimg.SHA256File(fx.disk, -1); h != fx.diskHash {
						t.Error("the old disk changed")
					}
					return
				}
				fx.oldSystemKept(t, "refusing to flash")
				return
			}
			if res.ExitCode != 0 || !strings.Contains(res.Console, "BOOT_DEV /dev/vda of stage 1 is now /dev/vdb") || !strings.Contains(res.Console, "balenaOS installed on /dev/vdb") {
				t.Fatalf("exit %d\nconsole:\n%s", res.ExitCode, res.Console)
			}
			disk, _ := os.ReadFile(fx.disk)
			img, _ := os.ReadFile(fx.image.Path)
			boot := fx.image.Parts[0]
			if !bytes.Equal(disk[:boot.Start], img[:boot.Start]) {
				t.Error("the old root's disk does not start with the image")
			}
		})
	}
}
