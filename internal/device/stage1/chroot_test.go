package stage1

// The real test: balena-migrate, built static from this module, runs as
// root in Debian 11, 12 and 13 chroots (each with its own kernel,
// initramfs-tools and grub programs) that live on an ext4 partition of a
// loop device, so / is a real block device as on a device. The chroots are
// built once by scripts/test-setup.d/20-stage1-chroot and cached as tarballs.

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

const chrootHome = "/home/migrate"

type chroot struct {
	t    *testing.T
	disk string   // the disk image file behind the loop device
	dir  string   // mount point of the chroot's root
	loop string   // the loop disk, /dev/loopN
	rel  string   // this machine's kernel release
	kver string   // the chroot's installed kernel
	esp  string   // the EFI system partition of a UEFI layout
	env  []string // added to every run's environment
}

// chrootSuites are the Debian releases the chroot tests run in, with the
// PRETTY_NAME of their /etc/os-release.
var chrootSuites = []struct{ suite, pretty string }{
	{"bullseye", "Debian GNU/Linux 11 (bullseye)"},
	{"bookworm", "Debian GNU/Linux 12 (bookworm)"},
	{"trixie", "Debian GNU/Linux 13 (trixie)"},
}

func chrootTarball(t *testing.T, suite string) string {
	return cachedTree(t, "20-stage1-chroot", "debian-"+suite)
}

// cachedTree is the tarball a set-up step caches a tree as:
// <prefix>-chroot-<hash of the step>.tar.zst in the test cache.
func cachedTree(t *testing.T, step, prefix string) string {
	script, err := os.ReadFile("../../../scripts/test-setup.d/" + step)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	cache := os.Getenv("BALENA_MIGRATE_TEST_CACHE")
	if cache == "" {
		cache = "/var/cache/balena-migrate-test"
	}
	return filepath.Join(cache, prefix+"-chroot-"+hex.EncodeToString(sum[:])[:16]+".tar.zst")
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newChroot puts the cached tree of a Debian suite on a fresh ext4
// partition of a loop disk (MBR, one partition, as on a BIOS PC).
func newChroot(t *testing.T, suite string) *chroot { return newChrootOn(t, suite, false) }

// newChrootOn with uefi lays the disk out as on a UEFI PC: GPT, an EFI
// system partition (FAT, p1) and the root (p2).
func newChrootOn(t *testing.T, suite string, uefi bool) *chroot {
	l := layoutBIOS
	if uefi {
		l = layoutUEFI
	}
	return newChrootWith(t, suite, chrootDisk{layout: l})
}

// newChrootWith puts the cached tree of a Debian suite on a loop disk made
// as d.
func newChrootWith(t *testing.T, suite string, d chrootDisk) *chroot {
	c := newChrootDisk(t, chrootTarball(t, suite), d, "run scripts/test-setup.d/20-stage1-chroot; scripts/test does")
	c.rel = sh(t, "uname", "-r")
	c.adoptKernel()
	if d == (chrootDisk{layout: layoutBIOS}) {
		// A BIOS PC boots grub from its disk's MBR, as grub-install left it.
		sh(t, "chroot", c.dir, "grub-install", "--target=i386-pc", c.loop)
	}
	return c
}

// diskLayout is how a chroot's loop disk is partitioned.
type diskLayout int

const (
	layoutBIOS diskLayout = iota // MBR, the root on p1
	layoutUEFI                   // GPT, an EFI system partition (FAT, p1, not mounted), the root on p2
	// layoutPi is a Raspberry Pi's SD card: MBR, the firmware's boot
	// partition on p1 mounted at /boot/firmware, the root on p2. p1 is
	// ext4 here, since this machine's kernel has no vfat; the VM tests
	// meet FAT.
	layoutPi
)

// chrootDisk is how a chroot's loop disk is made.
type chrootDisk struct {
	layout diskLayout
	sector int    // logical sector size of the loop disk; 512 when 0
	fs     string // the root's file system; ext4 when ""
}

// newChrootFrom unpacks a cached tree onto a fresh loop disk laid out as l.
func newChrootFrom(t *testing.T, tarball string, l diskLayout, hint string) *chroot {
	return newChrootDisk(t, tarball, chrootDisk{layout: l}, hint)
}

// newChrootDisk unpacks a cached tree onto a fresh loop disk made as d.
func newChrootDisk(t *testing.T, tarball string, d chrootDisk, hint string) *chroot {
	l := d.layout
	testenv.NeedRoot(t, "the chroot test mounts loop devices")
	testenv.NeedFile(t, tarball, hint)
	start := time.Now()
	// Not t.TempDir: its cleanup would delete through a mount that failed
	// to come off (the chroot's /dev is the host's).
	tmp, err := os.MkdirTemp("", "stage1-chroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeUnmounted(t, tmp) })
	disk := filepath.Join(tmp, "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	table, rootPart := map[diskLayout]string{
		layoutBIOS: "label: dos\nstart=2048, type=83\n",
		layoutUEFI: "label: gpt\nsize=64MiB, type=U, name=esp\ntype=L, name=root\n",
		layoutPi:   "label: dos\nstart=8192, size=256MiB, type=c\nstart=532480, type=83\n", // p2 after p1, not in the gap before it
	}[l], "p2"
	if l == layoutBIOS {
		rootPart = "p1"
	}
	c := &chroot{t: t, dir: filepath.Join(tmp, "root"), disk: disk}
	// The table is written through the loop disk, in its sector size.
	losetup := []string{"--find", "--show", disk}
	if d.sector != 0 {
		losetup = append([]string{"--sector-size", strconv.Itoa(d.sector)}, losetup...)
	}
	c.loop = sh(t, "losetup", losetup...)
	t.Cleanup(c.release)
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", c.loop)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	exec.Command("partx", "-u", c.loop).Run()
	if _, err := os.Stat(c.loop + rootPart); err != nil {
		sh(t, "partx", "-a", c.loop)
	}
	switch l {
	case layoutUEFI:
		c.esp = c.loop + "p1"
		sh(t, "mkfs.vfat", "-n", "ESP", c.esp)
	case layoutPi:
		sh(t, "mkfs.ext4", "-q", "-F", "-L", "RASPIFIRM", c.loop+"p1")
	}
	switch d.fs {
	case "", "ext4":
		sh(t, "mkfs.ext4", "-q", "-F", c.loop+rootPart)
	case "btrfs":
		testenv.NeedProgram(t, "mkfs.btrfs")
		sh(t, "mkfs.btrfs", "-q", "-f", c.loop+rootPart)
	default:
		t.Fatalf("no mkfs for %s", d.fs)
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "mount", c.loop+rootPart, c.dir)
	t.Cleanup(c.unmount)
	if l == layoutPi {
		// the tree's /boot/firmware lands on p1
		if err := os.MkdirAll(c.path("/boot/firmware"), 0o755); err != nil {
			t.Fatal(err)
		}
		sh(t, "mount", c.loop+"p1", c.path("/boot/firmware"))
	}
	sh(t, "tar", "-C", c.dir, "--numeric-owner", "--xattrs", "-I", "zstd", "-xf", tarball)
	for _, m := range []string{"proc", "sys", "dev"} {
		sh(t, "mount", "--rbind", "/"+m, filepath.Join(c.dir, m))
		sh(t, "mount", "--make-rslave", filepath.Join(c.dir, m))
	}
	t.Logf("chroot on %s%s ready in %v", c.loop, rootPart, time.Since(start).Round(time.Millisecond))
	return c
}

// unmount takes the chroot and its bind mounts off (idempotent).
func (c *chroot) unmount() {
	if exec.Command("umount", "-R", c.dir).Run() != nil {
		exec.Command("umount", "-R", "-l", c.dir).Run()
	}
}

// release unmounts and detaches the loop disk so that a VM can use the
// image file (idempotent).
func (c *chroot) release() {
	c.unmount()
	if c.loop != "" {
		exec.Command("partx", "-d", c.loop).Run()
		exec.Command("losetup", "-d", c.loop).Run()
		c.loop = ""
	}
}

// removeUnmounted deletes dir unless something is still mounted below it.
func removeUnmounted(t *testing.T, dir string) {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("cannot check mounts, leaving %s: %v", dir, err)
		return
	}
	for _, m := range parseMountinfo(string(info)) {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			t.Errorf("%s is still mounted, leaving %s for manual cleanup", m.Point, dir)
			return
		}
	}
	os.RemoveAll(dir)
}

// adoptKernel makes the chroot's installed kernel answer to this machine's
// release, since uname -r in the chroot reports the running kernel.
func (c *chroot) adoptKernel() {
	t := c.t
	mods, err := os.ReadDir(filepath.Join(c.dir, "lib/modules"))
	if err != nil || len(mods) != 1 {
		t.Fatalf("want one kernel in the chroot's /lib/modules, got %v (%v)", mods, err)
	}
	ver := mods[0].Name()
	c.kver = ver
	if ver == c.rel {
		return
	}
	if err := os.Symlink(ver, filepath.Join(c.dir, "lib/modules", c.rel)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config-", "vmlinuz-", "System.map-"} {
		data, err := os.ReadFile(filepath.Join(c.dir, "boot", name+ver))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, "boot", name+c.rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *chroot) path(p string) string { return filepath.Join(c.dir, p) }

func (c *chroot) write(p, data string, perm fs.FileMode) {
	c.t.Helper()
	if err := os.MkdirAll(filepath.Dir(c.path(p)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.path(p), []byte(data), perm); err != nil {
		c.t.Fatal(err)
	}
}

// run executes balena-migrate in the chroot; user "" is root.
func (c *chroot) run(user string, args ...string) (string, int) {
	c.t.Helper()
	return c.runEnv(nil, user, args...)
}

// runEnv is run with more environment variables.
func (c *chroot) runEnv(env []string, user string, args ...string) (string, int) {
	c.t.Helper()
	return c.runHome(env, user, chrootHome, args...)
}

// runHome is runEnv with the migration directory at home.
func (c *chroot) runHome(env []string, user, home string, args ...string) (string, int) {
	c.t.Helper()
	cargs := []string{}
	if user != "" {
		cargs = append(cargs, "--userspec="+user)
	}
	cargs = append(cargs, c.dir, home+"/balena-migrate", "--home", home)
	cmd := exec.Command("chroot", append(cargs, args...)...)
	cmd.Env = append(append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}, c.env...), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	c.t.Logf("balena-migrate %s (%v):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return string(out), 0
}

// snapshot lists every entry under the dirs with mode and content hash.
func (c *chroot) snapshot(dirs ...string) map[string]string {
	c.t.Helper()
	m := map[string]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(c.path(d), func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			v := info.Mode().String()
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				l, _ := os.Readlink(p)
				v += " -> " + l
			case info.Mode().IsRegular():
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(data)
				v += " " + hex.EncodeToString(sum[:8])
			}
			m[strings.TrimPrefix(p, c.dir)] = v
			return nil
		})
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return m
}

func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// diskImage returns a gzip'd small balenaOS-shaped disk image (an MBR with
// resin-boot, vfat, and resin-data, ext4, where stage 2 looks for them),
// and the SHA-256 of the raw image. It is built once per test binary.
func diskImage(t *testing.T) ([]byte, string) {
	t.Helper()
	smallImage.once.Do(func() { smallImage.gz, smallImage.sum, smallImage.err = buildSmallImage() })
	if smallImage.err != nil {
		t.Fatal(smallImage.err)
	}
	return smallImage.gz, smallImage.sum
}

var smallImage struct {
	once sync.Once
	gz   []byte
	sum  string
	err  error
}

func buildSmallImage() ([]byte, string, error) {
	dir, err := os.MkdirTemp("", "stage1-image-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "small-balena.img")
	if _, err := testimg.Build(p, 14*testimg.MiB, []testimg.Part{
		{Size: 4 * testimg.MiB, Type: "c", FS: "vfat", Label: testimg.LabelBoot, Files: map[string][]byte{"os-release": []byte("ID=balena-os\n")}},
		{Size: 1 * testimg.MiB, Type: "83", Label: testimg.LabelRootA, RandSeed: 1},
		{Size: 8 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelData},
	}); err != nil {
		return nil, "", err
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, "", err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(raw)
	zw.Close()
	sum := sha256.Sum256(raw)
	return b.Bytes(), hex.EncodeToString(sum[:]), nil
}

// staticBinary builds balena-migrate from this module with CGO_ENABLED=0.
func staticBinary(t *testing.T, dst string) { staticBinaryFor(t, dst, runtime.GOARCH, "") }

// staticBinaryFor builds it for another architecture (goarm for GOARCH=arm).
func staticBinaryFor(t *testing.T, dst, goarch, goarm string) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", dst, "../../../cmd/balena-migrate")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch, "GOARM="+goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// fakeBalena listens where the chroot's connectivity check dials.
// fakeBalena is an HTTPS server answering the API's /ping; its port
// stands in for the VPN's too (a TCP connect is all that is asked of it).
func fakeBalena(t *testing.T) int {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK") }))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func TestChrootStage1(t *testing.T) {
	for _, s := range chrootSuites {
		t.Run(s.suite, func(t *testing.T) { chrootStage1(t, s.suite, s.pretty) })
	}
}

func chrootStage1(t *testing.T, suite, pretty string) {
	c := newChroot(t, suite)
	img, imgSum := diskImage(t)
	port := fakeBalena(t)
	staticBinary(t, c.path(chrootHome+"/balena-migrate"))
	if err := os.Chmod(c.path(chrootHome), 0o755); err != nil {
		t.Fatal(err)
	}
	c.write(chrootHome+"/resin-genericx86-64-2.99.0-test.img.gz", string(img), 0o644)
	c.write(chrootHome+"/resin-raspberrypi3-2.99.0-test.img.gz", string(img), 0o644)
	conf := func(image string) string {
		// The chroot is not the machine whose network runs here: the
		// reachability contract is off (and says so).
		return fmt.Sprintf("IMAGE_NAME=%s\nBACKUP_DIRECTORIES=/etc/default\nMIGRATE_ALL_WIFIS=TRUE\nREQUIRE_NMGR_FILE=TRUE\n"+
			"BALENA_API_HOST=127.0.0.1\nBALENA_API_PORT=%d\nBALENA_VPN_HOST=127.0.0.1\nBALENA_VPN_PORT=%d\nBALENA_CONFIG=config.json\n"+
			"NETWORK_CHECK=FALSE\nBALENA_CONNECT_TIMEOUT=5\n", image, port, port)
	}
	refused := func(name, image, user, want string) {
		t.Run(name, func(t *testing.T) {
			c.write(chrootHome+"/balena-migrate.conf", conf(image), 0o644)
			before := c.snapshot("/boot", "/etc", chrootHome)
			out, code := c.run(user)
			if code != 1 || !strings.Contains(out, "ERROR: ") || !strings.Contains(out, want) {
				t.Fatalf("want exit 1 and an ERROR line with %q, got exit %d", want, code)
			}
			if strings.Contains(out, "migration successful") {
				t.Fatal("a refused run claims success")
			}
			if d := diffSnapshots(before, c.snapshot("/boot", "/etc", chrootHome)); len(d) > 0 {
				t.Fatalf("a refused run changed the system:\n%s", strings.Join(d, "\n"))
			}
		})
	}
	// No network configured yet (the chroot has no network stack, and
	// config.json no Wi-Fi): refused after the backup was made, which must
	// be undone.
	c.write(chrootHome+"/config.json", `{"deviceType":"genericx86-64"}`, 0o600)
	refused("NoNetworkConfig", "resin-genericx86-64-2.99.0-test.img.gz", "", "REQUIRE_NMGR_FILE")
	c.write(chrootHome+"/config.json", `{"deviceType":"genericx86-64","wifiSsid":"fleet-net","wifiKey":"s3cret-pass"}`, 0o600)
	c.write("/etc/hostname", "chroot-gw\n", 0o644)
	refused("WrongDevice", "resin-raspberrypi3-2.99.0-test.img.gz", "", "is for raspberrypi3 but this device is a BIOS PC")
	refused("MissingImage", "resin-genericx86-64-9.9.9.img.gz", "", "resin-genericx86-64-9.9.9.img.gz: stat")
	refused("NotRoot", "resin-genericx86-64-2.99.0-test.img.gz", "65534:65534", "must run as root")

	t.Run("Pretend", func(t *testing.T) { c.pretend(t, conf, imgSum, pretty) })
	if suite == "bookworm" {
		t.Run("NoOSCheckFromEnvironment", func(t *testing.T) { c.noOSCheck(t, conf) })
	}

	// The real boot setup: 42_balena, update-grub and grub-reboot run by the
	// chroot's own grub on its loop disk.
	t.Run("GrubBootSetup", c.grubBootSetup)
	if suite == "bookworm" {
		t.Run("LeftoversOnceTheStage2BootIsOver", c.leftovers)
	}
}

// leftovers: when the stage-2 boot never reached stage 2 (which removes
// them as it hands back), what stage 1 installed for that boot goes on the
// old system's next boot (a systemd unit runs the cleanup record) or with
// the next stage-1 run; in the boot stage 1 ran in, neither touches it.
// A later boot is a boot id of another boot over the chroot's own.
func (c *chroot) leftovers(t *testing.T) {
	testenv.NeedProgram(t, "systemctl")
	testenv.NeedProgram(t, "systemd-analyze")
	left := []string{grubScript, "/boot/" + initramfsName(c.rel), cleanupWants, cleanupUnit, cleanupRecord}
	want := func(exist bool) {
		t.Helper()
		for _, p := range left {
			if _, err := os.Lstat(c.path(p)); (err == nil) != exist {
				t.Fatalf("%s exists: %t, want %t", p, err == nil, exist)
			}
		}
	}
	want(true)
	// systemd reads the unit as the old system's next boot will
	if got := sh(t, "systemctl", "--root="+c.dir, "is-enabled", filepath.Base(cleanupUnit)); got != "enabled" {
		t.Fatalf("systemctl is-enabled: %q", got)
	}
	sh(t, "systemd-analyze", "verify", c.path(cleanupUnit))
	// the same boot: the stage-2 boot is still to come
	sh(t, "chroot", c.dir, "/bin/sh", cleanupRecord)
	want(true)
	otherBoot := func() (undo func()) {
		fake := filepath.Join(t.TempDir(), "boot_id")
		if err := os.WriteFile(fake, []byte("0c8d7e66-1d1b-4b7e-a0b4-2d1d5e0f9a01\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		sh(t, "mount", "--bind", fake, c.path(bootIDFile))
		return func() { sh(t, "umount", c.path(bootIDFile)) }
	}
	// keep what stage 1 installed, to try the next stage-1 run with it too
	saved := t.TempDir()
	for i, p := range left {
		sh(t, "cp", "-a", c.path(p), filepath.Join(saved, strconv.Itoa(i)))
	}
	// the old system's next boot: the unit's command
	defer otherBoot()()
	sh(t, "chroot", c.dir, "/bin/sh", cleanupRecord)
	want(false)
	sh(t, "chroot", c.dir, "update-grub")
	if cfg := string(mustRead(t, c.path("/boot/grub/grub.cfg"))); strings.Contains(cfg, "balena-migrate") {
		t.Fatalf("update-grub still writes the stage-2 entry:\n%s", cfg)
	}
	// the next stage-1 run, even one refused at once (an image for
	// another device)
	for i, p := range left {
		sh(t, "cp", "-a", filepath.Join(saved, strconv.Itoa(i)), c.path(p))
	}
	want(true)
	conf := string(mustRead(t, c.path(chrootHome+"/balena-migrate.conf")))
	defer c.write(chrootHome+"/balena-migrate.conf", conf, 0o644)
	c.write(chrootHome+"/balena-migrate.conf", strings.Replace(conf, "resin-genericx86-64-", "resin-raspberrypi3-", 1), 0o644)
	out, code := c.run("")
	if code != 1 || !strings.Contains(out, "removed "+grubScript+", left by an earlier run for a stage-2 boot that is over") {
		t.Fatalf("stage 1 after the stage-2 boot: exit %d", code)
	}
	want(false)
}

// pretend runs --pretend and checks everything it prepared.
func (c *chroot) pretend(t *testing.T, conf func(string) string, imgSum, pretty string) {
	c.write(chrootHome+"/balena-migrate.conf", conf("resin-genericx86-64-2.99.0-test.img.gz"), 0o644)
	before := c.snapshot("/boot")
	out, code := c.run("", "--pretend")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || lines[len(lines)-1] != "migration successful, please reboot system" {
		t.Fatalf("--pretend: exit %d, last line %q", code, lines[len(lines)-1])
	}
	if !strings.Contains(out, "system: "+pretty+" on BIOS PC (x86_64)") {
		t.Fatalf("stage 1 did not report the chroot's system %q", pretty)
	}
	if d := diffSnapshots(before, c.snapshot("/boot")); len(d) > 0 {
		t.Fatalf("--pretend changed the boot setup:\n%s", strings.Join(d, "\n"))
	}
	s2, err := s2config.Load(c.path(s2config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	if s2.BootDev != c.loop || s2.ImageSHA256 != imgSum || !s2.NoFlash || s2.HomeDir != chrootHome ||
		s2.BackupFile != "backup.tgz" || strings.Join(s2.NetworkConfigs, " ") != "resin-wifi-01" || s2.BalenaConfig != stage2ConfigJSON {
		t.Fatalf("stage-2 config: %+v (want BOOT_DEV %s, sha %s)", s2, c.loop, imgSum)
	}
	if cfg := string(mustRead(t, c.path(chrootHome+"/"+stage2ConfigJSON))); !strings.Contains(cfg, `"hostname":"chroot-gw"`) {
		t.Errorf("config.json for stage 2 lacks the hostname: %s", cfg)
	}
	// What this machine's own links look like decides which of the two
	// the contract says.
	if !strings.Contains(out, "WARN: NETWORK_CHECK=FALSE: migrating although") && !strings.Contains(out, "comes up on balenaOS") {
		t.Error("the log says nothing about the links the device is reached through")
	}
	if !strings.Contains(out, "reachable: API https://127.0.0.1:") {
		t.Error("the log does not report the API")
	}
	wifi, err := os.ReadFile(c.path(chrootHome + "/resin-wifi-01"))
	if err != nil || !bytes.Contains(wifi, []byte("ssid=fleet-net\n")) || !bytes.Contains(wifi, []byte("psk=s3cret-pass\n")) {
		t.Fatalf("resin-wifi-01: %v\n%s", err, wifi)
	}
	c.checkInitramfs(t)
}

// noOSCheck: a system not in the list is refused, and runs with
// NO_OS_CHECK=TRUE in the environment, saying so in the log.
func (c *chroot) noOSCheck(t *testing.T, conf func(string) string) {
	osRelease := mustRead(t, c.path("/etc/os-release"))
	defer c.write("/etc/os-release", string(osRelease), 0o644)
	c.write("/etc/os-release", "NAME=\"Example Linux\"\nID=example\nVERSION_ID=\"7\"\nPRETTY_NAME=\"Example Linux 7\"\n", 0o644)
	c.write(chrootHome+"/balena-migrate.conf", conf("resin-genericx86-64-2.99.0-test.img.gz"), 0o644)
	if out, code := c.run("", "--pretend"); code != 1 || !strings.Contains(out, "ERROR: failed (os): unsupported OS: OS example 7 (Example Linux 7) is not supported") {
		t.Fatalf("an unlisted OS: exit %d", code)
	}
	out, code := c.runEnv([]string{"NO_OS_CHECK=TRUE"}, "", "--pretend")
	if code != 0 || !strings.Contains(out, "WARN: NO_OS_CHECK: Example Linux 7 (ID=example VERSION_ID=7) is not a tested system") {
		t.Fatalf("NO_OS_CHECK=TRUE: exit %d", code)
	}
}

// grubBootSetup runs the real boot setup with the chroot's grub.
func (c *chroot) grubBootSetup(t *testing.T) {
	out, code := c.run("")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || lines[len(lines)-1] != "migration successful, please reboot system" {
		t.Fatalf("exit %d, last line %q", code, lines[len(lines)-1])
	}
	cfg, err := os.ReadFile(c.path("/boot/grub/grub.cfg"))
	if err != nil || !bytes.Contains(cfg, []byte("menuentry 'balena-migrate' --id balena-migrate {")) {
		t.Fatalf("grub.cfg has no balena-migrate entry: %v\n%s", err, cfg)
	}
	for _, want := range []string{"linux /boot/vmlinuz-" + c.rel + " ", "initrd /boot/" + initramfsName(c.rel) + "\n"} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	if out, err := exec.Command("chroot", c.dir, "grub-script-check", "/boot/grub/grub.cfg").CombinedOutput(); err != nil {
		t.Errorf("grub-script-check: %v\n%s", err, out)
	}
	env := sh(t, "chroot", c.dir, "grub-editenv", "/boot/grub/grubenv", "list")
	if !strings.Contains(env, "next_entry=balena-migrate") {
		t.Errorf("grubenv: %q", env)
	}
	installed, err := os.ReadFile(c.path("/boot/" + initramfsName(c.rel)))
	built, _ := os.ReadFile(c.path(chrootHome + "/" + initramfsName(c.rel)))
	if err != nil || !bytes.Equal(installed, built) {
		t.Errorf("the installed initramfs is not the built one: %v", err)
	}
}

// checkInitramfs lists the built initramfs with the chroot's lsinitramfs.
func (c *chroot) checkInitramfs(t *testing.T) {
	initrd := chrootHome + "/" + initramfsName(c.rel)
	out, err := exec.Command("chroot", c.dir, "lsinitramfs", initrd).CombinedOutput()
	if err != nil {
		t.Fatalf("lsinitramfs: %v\n%s", err, out)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		have[strings.TrimSpace(l)] = true
		for _, m := range []string{"vfat", "softdog"} {
			if strings.HasSuffix(l, "/"+m+".ko") || strings.HasSuffix(l, "/"+m+".ko.xz") || strings.HasSuffix(l, "/"+m+".ko.zst") {
				have[m+".ko"] = true
			}
		}
	}
	for _, want := range [][]string{
		{"bin/balena-migrate", "usr/bin/balena-migrate"},
		{"etc/balena-migrate-stage2.conf"},
		{"scripts/local-bottom/balena-migrate"},
		{"scripts/init-top/balena-migrate"},
		{"vfat.ko"},
		// no hardware watchdog on this machine: the cloud kernel's softdog
		{"softdog.ko"},
	} {
		found := false
		for _, w := range want {
			found = found || have[w]
		}
		if !found {
			t.Errorf("the initramfs lacks %s (%d entries)", want[0], len(have))
		}
	}
	t.Logf("initramfs %s: %d entries, kernel %s (as %s)", initrd, len(have), c.kver, strconv.Quote(c.rel))

	// Unpacked, it carries exactly our binary and stage-2 config, and
	// initramfs-tools runs our script in local-bottom.
	sh(t, "chroot", c.dir, "unmkinitramfs", initrd, "/tmp/unpacked")
	unpacked := c.path("/tmp/unpacked")
	if _, err := os.Stat(filepath.Join(unpacked, "main")); err == nil {
		unpacked = filepath.Join(unpacked, "main") // early microcode cpio first
	}
	for inside, outside := range map[string]string{
		"usr/bin/balena-migrate":         chrootHome + "/balena-migrate",
		"etc/balena-migrate-stage2.conf": s2config.DefaultPath,
	} {
		a, err := os.ReadFile(filepath.Join(unpacked, inside))
		b, _ := os.ReadFile(c.path(outside))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s in the initramfs differs from %s (%v)", inside, outside, err)
		}
	}
	// The modules are the chroot's own kernel's, not the machine's.
	vfat := ""
	filepath.WalkDir(unpacked, func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(de.Name(), "vfat.ko") {
			vfat = strings.TrimPrefix(p, c.dir)
		}
		return nil
	})
	if vfat == "" {
		t.Error("no vfat module in the unpacked initramfs")
	} else if magic := sh(t, "chroot", c.dir, "modinfo", "-F", "vermagic", vfat); !strings.HasPrefix(magic, c.kver+" ") {
		t.Errorf("%s in the initramfs is for kernel %q, not the chroot's %s", vfat, magic, c.kver)
	}
	for _, dir := range []string{"local-bottom", "init-top"} {
		order, err := os.ReadFile(filepath.Join(unpacked, "scripts", dir, "ORDER"))
		if err != nil || !bytes.Contains(order, []byte("/scripts/"+dir+"/balena-migrate")) {
			t.Errorf("%s/ORDER does not run balena-migrate: %v\n%s", dir, err, order)
		}
	}
	conf, err := s2config.Load(filepath.Join(unpacked, "etc/balena-migrate-stage2.conf"))
	if err != nil || conf.Watchdog != 300 || conf.WatchdogModule != "softdog" {
		t.Errorf("stage-2 config: WATCHDOG=%d WATCHDOG_MODULE=%q (%v), want 300 and softdog", conf.Watchdog, conf.WatchdogModule, err)
	}
	os.RemoveAll(c.path("/tmp/unpacked"))
}
