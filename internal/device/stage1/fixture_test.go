package stage1

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
	"github.com/fleetmig/balena-migrate/internal/device/netconf"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/envfile"
)

// fakeHost runs stage 1 against a copy of a fixture tree. Its programs act
// on that tree the way the real ones act on a device, and check what the
// real ones would need.
type fakeHost struct {
	t                *testing.T
	root             string
	uid              int
	machine, release string
	free             uint64
	// unreachable are the endpoints that do not answer; live is the
	// running network (a DHCP ethernet port by default).
	unreachable map[endpoints.Kind]bool
	live        netconf.Live
	fail        map[string]error // program base name → error it fails with
	ran         []string
	// omit is an entry the hook "fails" to put into the initramfs.
	omit string
	// synced lists the Sync calls: the device path and whether the boot
	// setup already pointed at stage 2 at that moment.
	synced []syncCall
}

type syncCall struct {
	path        string
	bootChanged bool
}

func (h *fakeHost) Sync(p string) error {
	if _, err := os.Stat(p); err != nil {
		return err
	}
	rel, _ := filepath.Rel(h.root, p)
	h.synced = append(h.synced, syncCall{"/" + rel, h.bootChanged()})
	return nil
}

// bootChanged says whether the next boot (for tryboot: the next tryboot
// reboot) would start stage 2: config.txt or tryboot.txt (Raspberry Pi) or
// grubenv (grub) names our initramfs or entry.
func (h *fakeHost) bootChanged() bool {
	var cfg []byte
	for _, f := range []string{"/boot/config.txt", "/boot/firmware/config.txt", "/boot/firmware/tryboot.txt"} {
		data, _ := os.ReadFile(filepath.Join(h.root, f))
		cfg = append(cfg, data...)
	}
	env, _ := os.ReadFile(filepath.Join(h.root, "/boot/grub/grubenv"))
	return bytes.Contains(cfg, []byte("balena-migrate-initramfs")) || bytes.Contains(env, []byte("next_entry=balena-migrate"))
}

var _ Host = (*fakeHost)(nil)

func (h *fakeHost) Root() string                   { return h.root }
func (h *fakeHost) Getuid() int                    { return h.uid }
func (h *fakeHost) Uname() (string, string, error) { return h.machine, h.release, nil }
func (h *fakeHost) FreeSpace(string) (uint64, error) {
	return h.free, nil
}
func (h *fakeHost) Probe(_ context.Context, _ *endpoints.Prober, eps []endpoints.Endpoint) []endpoints.Result {
	var out []endpoints.Result
	for _, e := range eps {
		if h.unreachable[e.Kind] {
			out = append(out, endpoints.Result{Endpoint: e, Detail: "dial tcp " + e.Addr + ": connect: connection refused"})
			continue
		}
		out = append(out, endpoints.Result{Endpoint: e, OK: true, Detail: "answered in 1ms"})
	}
	return out
}

func (h *fakeHost) Network() (netconf.Live, error) { return h.live, nil }

// dhcpEthernet is a device reached over a DHCP ethernet port.
func dhcpEthernet() netconf.Live {
	return netconf.Live{Links: []netconf.Link{{Name: "eth0", MAC: "b8:27:eb:00:00:01", PermanentMAC: true, Physical: true, Ethernet: true,
		Addrs: []netconf.LinkAddr{{Prefix: netip.MustParsePrefix("192.168.1.20/24"), Dynamic: true}}}}, Default: []string{"eth0"}, Session: "eth0"}
}
func (h *fakeHost) Now() time.Time {
	return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
}

func (h *fakeHost) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	h.ran = append(h.ran, name+" "+strings.Join(args, " "))
	if err := h.fail[filepath.Base(name)]; err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	if _, err := os.Stat(filepath.Join(h.root, name)); err != nil {
		return nil, fmt.Errorf("%s: not on the device: %w", name, err)
	}
	p := func(s string) string { return filepath.Join(h.root, s) }
	switch filepath.Base(name) {
	case "mkinitramfs": // -d DIR -o OUT RELEASE
		if len(args) != 5 || args[0] != "-d" || args[2] != "-o" || args[4] != h.release {
			return nil, fmt.Errorf("mkinitramfs: unexpected arguments %q", args)
		}
		for _, f := range []string{"initramfs.conf", "balena-migrate-hook.conf", "hooks/balena-migrate", "scripts/local-bottom/balena-migrate", "scripts/init-top/balena-migrate"} {
			if _, err := os.Stat(p(filepath.Join(args[1], f))); err != nil {
				return nil, fmt.Errorf("mkinitramfs: config dir: %w", err)
			}
		}
		// What the hook would put in, as lsinitramfs lists it.
		hook, err := envfile.Read(p(filepath.Join(args[1], "balena-migrate-hook.conf")))
		if err != nil {
			return nil, err
		}
		list := []string{".", "usr/bin/balena-migrate", "etc/balena-migrate-stage2.conf", "scripts/local-bottom/balena-migrate", "scripts/init-top/balena-migrate"}
		for _, m := range strings.Fields(hook.Value("BALENA_MIGRATE_MODULES")) {
			list = append(list, "usr/lib/modules/"+h.release+"/kernel/drivers/"+m+".ko.zst")
		}
		for _, prog := range strings.Fields(hook.Value("BALENA_MIGRATE_PROGRAMS")) {
			list = append(list, strings.TrimPrefix(prog, "/"))
		}
		var kept []string
		for _, l := range list {
			if h.omit == "" || !strings.Contains(l, h.omit) {
				kept = append(kept, l)
			}
		}
		return nil, os.WriteFile(p(args[3]), []byte(strings.Join(kept, "\n")+"\n"), 0o644)
	case "lsinitramfs":
		return os.ReadFile(p(args[0]))
	case "update-grub":
		cfg, err := os.ReadFile(p("/boot/grub/grub.cfg"))
		if err != nil {
			return nil, err
		}
		entry, err := os.ReadFile(p("/etc/grub.d/42_balena"))
		if err != nil {
			return nil, err
		}
		lines := strings.SplitN(string(entry), "\n", 3) // the script prints itself from line 3
		return nil, os.WriteFile(p("/boot/grub/grub.cfg"), append(cfg, lines[2]...), 0o644)
	case "grub-reboot":
		return nil, os.WriteFile(p("/boot/grub/grubenv"), []byte("# GRUB Environment Block\nnext_entry="+args[0]+"\n"), 0o644)
	case "grub-probe":
		if strings.Contains(strings.Join(args, " "), "fs_uuid") {
			return []byte("0b8fb1b6-2d1c-4c5e-a1b2-3c4d5e6f7a8b\n"), nil
		}
		return []byte("ext2\n"), nil
	}
	return nil, nil
}

// fixture is one device: its tree, identity and home dir.
type fixture struct {
	name, machine, release, home, image string
}

// fixtures: 0 Pi 3, 1 Pi 4, 2 Ubuntu BIOS, 3 Ubuntu UEFI, 4 BeagleBone Green,
// 5 Ubuntu 24.04 UEFI, 6 Raspberry Pi OS trixie on a Pi 5, 7 32-bit
// Raspberry Pi OS bookworm on a Pi 3, 8 Ubuntu 22.04 cloud VM (virtio,
// BIOS), 9 Debian 12 on a UEFI arm64 machine (ACPI, no device tree). Each
// tree has the /etc/os-release,
// boot layout and kernel naming of that system as installed.
var fixtures = [...]fixture{
	{"pi3-raspbian9", "armv7l", "4.19.66-v7+", "/home/pi/migrate", "balena-cloud-fleet-raspberrypi3-2.50.1+rev1-v11.4.10.img.gz"},
	{"pi4-rpios12", "aarch64", "6.6.51+rpt-rpi-v8", "/home/pi/migrate", "balena-cloud-fleet-raspberrypi4-64-5.1.20-v16.4.img.gz"},
	{"ubuntu1804-bios", "x86_64", "4.15.0-20-generic", "/home/admin/migrate", "resin-genericx86-64-2.26.0.img.gz"},
	{"ubuntu1804-uefi", "x86_64", "4.15.0-20-generic", "/home/admin/migrate", "resin-genericx86-64-2.26.0.img.gz"},
	{"bbg-debian9", "armv7l", "4.14.71-ti-r80", "/home/debian/migrate", "balena-cloud-lab-beaglebone-green-2.38.0.img.gz"},
	{"ubuntu2404-uefi", "x86_64", "6.8.0-85-generic", "/home/admin/migrate", "balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img.gz"},
	{"rpios13-pi5", "aarch64", "6.12.47+rpt-rpi-2712", "/home/pi/migrate", "balena-cloud-fleet-raspberrypi5-6.1.21-v16.7.img.gz"},
	{"raspbian12-pi3", "armv7l", "6.6.51+rpt-rpi-v7", "/home/pi/migrate", "balena-cloud-fleet-raspberrypi3-6.1.21-v16.7.img.gz"},
	{"ubuntu2204-vm", "x86_64", "5.15.0-160-generic", "/home/admin/migrate", "balena-cloud-fleet-genericx86-64-ext-6.0.13-v16.4.0.img.gz"},
	{"debian12-arm64-uefi", "aarch64", "6.1.0-28-arm64", "/home/admin/migrate", "balena-cloud-fleet-generic-aarch64-6.0.13-v16.4.0.img.gz"},
}

// device is a fixture copied to a temp dir, ready to run.
type device struct {
	fixture
	host   *fakeHost
	cfg    Config
	imgSum string
	log    bytes.Buffer
}

func newDevice(t *testing.T, f fixture, static string) *device {
	t.Helper()
	root := t.TempDir()
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(filepath.Join("testdata", f.name), root); err != nil {
		t.Fatal(err)
	}
	fakeDisk(t, root)
	d := &device{fixture: f, host: &fakeHost{t: t, root: root, machine: f.machine, release: f.release, free: 8 << 30, live: dhcpEthernet()}}
	img, sum := diskImage(t)
	d.imgSum = sum
	d.write(filepath.Join(f.home, f.image), img)
	d.write(filepath.Join(f.home, "balena-migrate"), mustRead(t, static))
	d.cfg = defaults()
	d.cfg.HomeDir = f.home
	d.cfg.ImageName = filepath.Join(f.home, f.image)
	d.cfg.MigrateAllWifis = true
	d.cfg.APIHost, d.cfg.VPNHost = "api.example", "vpn.example"
	return d
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (d *device) path(p string) string { return filepath.Join(d.host.root, p) }

func (d *device) write(p string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(d.path(p)), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(d.path(p), data, 0o644); err != nil {
		panic(err)
	}
}

func (d *device) read(t *testing.T, p string) string { return string(mustRead(t, d.path(p))) }

func (d *device) run() (Result, error) {
	return Run(context.Background(), Options{
		Config: d.cfg, Host: d.host, Binary: filepath.Join(d.home, "balena-migrate"),
		Log: &Log{W: &d.log, Now: d.host.Now},
	})
}

// tree snapshots the whole device tree.
func (d *device) tree(t *testing.T) map[string]string {
	c := &chroot{t: t, dir: d.host.root}
	return c.snapshot("/")
}

// zipImage packs a gzip image's content into a zip, as the dashboard serves it.
func zipImage(t *testing.T, raw []byte, inner string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create(inner)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	zw.Close()
	return b.Bytes()
}

func loadS2(t *testing.T, d *device) s2config.Config {
	t.Helper()
	c, err := s2config.Load(d.path(s2config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isErr(err, target error) bool { return errors.Is(err, target) }

// fakeDisk gives a fixture's root disk what stage 1 reads for its identity
// where the fixture tree lacks it: sysfs size and start, and a device node
// holding an MBR with a disk signature.
func fakeDisk(t *testing.T, root string) {
	t.Helper()
	f := files{root}
	l, err := f.detectLayout("/boot")
	if err != nil {
		if l, err = f.detectLayout("/boot/firmware"); err != nil {
			return // a fixture for a refusal
		}
	}
	write := func(p string, data []byte) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	diskDir := f.p(l.Root.SysDir)
	if l.Root.Partition != "" {
		write(filepath.Join(diskDir, "start"), []byte("2048\n"))
		diskDir = filepath.Dir(diskDir)
	}
	write(filepath.Join(diskDir, "size"), []byte("62333952\n"))
	mbr := make([]byte, 1024)
	copy(mbr[0x180:], "GRUB \x00Geom\x00Hard Disk\x00Read\x00 Error") // grub's boot.img, as grub-install leaves it
	copy(mbr[440:], []byte{0x4d, 0x3c, 0x2b, 0x1a})
	mbr[510], mbr[511] = 0x55, 0xAA
	write(f.p(l.Root.Disk), mbr)
}
