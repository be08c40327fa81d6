package stage1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

// bootCase is one row of a boot setup's table test: a device tree holding
// the boot files as the family has them, what plan must decide, what the
// files must hold after apply, and what undo hands stage 2.
type bootCase struct {
	name   string
	tree   map[string]string // device path → content; the rest of the boot files
	layout BootLayout
	cfg    func(c *Config)                   // settings besides DEBUG (nil: none)
	fail   string                            // a program that fails in apply
	before func(d *bootDevice)               // runs between plan and apply
	debug  bool                              // DEBUG
	err    error                             // plan or apply fails with it ...
	words  string                            // ... and these words
	plan   string                            // what plan decides (planSummary)
	files  map[string]string                 // device path → content after apply
	check  func(t *testing.T, d *bootDevice) // more checks after apply
	undo   string                            // what stage 2 does (undoSummary)
}

// bootDevice is a bootCase's tree with a host that runs the fake programs.
type bootDevice struct {
	root string
	host *fakeHost
	log  bytes.Buffer
}

const bootRelease = "6.1.0-21-test"

// ours is the content of stage 1's initramfs in the tests.
const ours = "balena-migrate initramfs\n"

// testBootID is the boot stage 1 runs in on the test trees.
const testBootID = "5b0e2b38-6f0e-4d39-9d6c-3c1a1f7c0a11"

func (d *bootDevice) read(t *testing.T, p string) string {
	return string(mustRead(t, filepath.Join(d.root, p)))
}

// writeTree writes device paths under root; programs in /usr/sbin are executable.
func writeTree(t *testing.T, root string, tree map[string]string) {
	t.Helper()
	for p, data := range tree {
		perm := os.FileMode(0o644)
		if strings.HasPrefix(p, "/usr/sbin/") {
			perm = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), perm); err != nil {
			t.Fatal(err)
		}
	}
}

// runBootCases runs each case through plan, the common install and the
// family's apply, then checks undo and that the journal puts every file
// back as it was.
func runBootCases(t *testing.T, s bootSetup, cases []bootCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &bootDevice{root: t.TempDir()}
			d.host = &fakeHost{t: t, root: d.root, release: bootRelease, free: 8 << 30}
			if tc.fail != "" {
				d.host.fail = map[string]error{tc.fail: errors.New("exit status 1")}
			}
			home := "/home/m"
			writeTree(t, d.root, tc.tree)
			writeTree(t, d.root, map[string]string{filepath.Join(home, initramfsName(bootRelease)): ours, bootIDFile: testBootID + "\n"})
			if err := os.MkdirAll(filepath.Join(d.root, "/etc/systemd/system"), 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := defaults()
			cfg.HomeDir, cfg.Debug = home, tc.debug
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := bootEnv{files: files{d.root}, host: d.host, log: &Log{W: &d.log}, cfg: &cfg, release: bootRelease, layout: tc.layout}
			before := (&chroot{t: t, dir: d.root}).snapshot("/")
			p, err := s.plan(e)
			if err == nil {
				// a case that fails in apply may leave the plan out
				if got := planSummary(p); got != tc.plan && (tc.err == nil || tc.plan != "") {
					t.Errorf("plan:\n got %s\nwant %s", got, tc.plan)
				}
				if diff := diffSnapshots(before, (&chroot{t: t, dir: d.root}).snapshot("/")); len(diff) > 0 {
					t.Fatalf("plan changed the device: %v", diff)
				}
				if tc.before != nil {
					tc.before(d)
					before = (&chroot{t: t, dir: d.root}).snapshot("/")
				}
				e.journal = newJournal(d.root)
				e.progs = map[string]string{}
				for _, prog := range p.programs {
					e.progs[prog] = "/usr/sbin/" + prog
				}
				err = installBoot(context.Background(), e, s, p, nil, filepath.Join(home, initramfsName(bootRelease)), e.leftovers(p))
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.words) {
					t.Fatalf("want %v with %q, got %v", tc.err, tc.words, err)
				}
				if e.journal != nil {
					if rerr := e.journal.Rollback(); rerr != nil {
						t.Fatal(rerr)
					}
				}
				if diff := diffSnapshots(before, (&chroot{t: t, dir: d.root}).snapshot("/")); len(diff) > 0 {
					t.Fatalf("a failed boot setup left changes: %v", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, d.log.String())
			}
			for path, want := range tc.files {
				if got := d.read(t, path); got != want {
					t.Errorf("%s:\n got %q\nwant %q", path, got, want)
				}
			}
			if tc.check != nil {
				tc.check(t, d)
			}
			if got := undoSummary(s.undo(p)); got != tc.undo {
				t.Errorf("undo:\n got %s\nwant %s", got, tc.undo)
			}
			// The journal puts every boot file back as it was.
			if err := e.journal.Rollback(); err != nil {
				t.Fatal(err)
			}
			if diff := diffSnapshots(before, (&chroot{t: t, dir: d.root}).snapshot("/")); len(diff) > 0 {
				t.Errorf("the journal did not undo the boot setup: %v", diff)
			}
		})
	}
}

// planSummary writes a plan on one line: the initramfs place, the backups
// (original names), the added files, the programs and the stage-2 settings.
func planSummary(p bootPlan) string {
	var backups []string
	for _, b := range p.backups {
		if b.backup != b.original+"."+p.stamp || b.sha256 == "" {
			backups = append(backups, "bad backup "+b.backup)
			continue
		}
		backups = append(backups, b.original)
	}
	return fmt.Sprintf("initrd=%s backup=%s added=%s programs=%s reboot=%q grub=%s/%s",
		p.initrd, strings.Join(backups, ","), strings.Join(p.added, ","), strings.Join(p.programs, ","), p.rebootArg, p.grubBoot, p.grubInstall)
}

// undoSummary writes an undo on one line: backup:original pairs to
// restore, then the files to remove.
func undoSummary(u bootUndo) string {
	var r []string
	for _, p := range u.restore {
		if p.SHA256 == "" {
			r = append(r, "unchecked "+p.Backup)
			continue
		}
		r = append(r, p.Backup+":"+p.Original)
	}
	return fmt.Sprintf("restore=%s remove=%s", strings.Join(r, ","), strings.Join(u.remove, ","))
}

// bootOn is a layout whose boot directory dir is on the filesystem mounted at mount.
func bootOn(dir, mount, part, fsType string) BootLayout {
	return BootLayout{
		Root:    Disk{Mount: Mount{Point: "/", FSType: "ext4"}, Disk: "/dev/sda", Partition: "/dev/sda2"},
		Boot:    Disk{Mount: Mount{Point: mount, FSType: fsType}, Disk: "/dev/sda", Partition: part},
		BootDir: dir,
	}
}

func TestChooseBoot(t *testing.T) {
	pi := func(rev, machine string) devicetype.Device {
		d, err := devicetype.PiFromRevision(rev, machine)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	pc := devicetype.Device{Name: "BIOS PC", Slugs: []string{"genericx86-64-ext"}, Family: devicetype.FamilyPC}
	for _, tc := range []struct {
		name   string
		device devicetype.Device
		tree   map[string]string
		want   bootSetup
		dir    string
		err    error
		words  string
	}{
		{"BIOS PC", pc, nil, grubBIOSBoot{}, "/boot", nil, ""},
		{"UEFI PC", pc, map[string]string{"/sys/firmware/efi/runtime": ""}, grubEFIBoot{}, "/boot", nil, ""},
		{"Pi 3", pi("a02082", "armv7l"), map[string]string{"/boot/config.txt": ""}, piConfigBoot{}, "/boot", nil, ""},
		{"Pi 3 with /boot/firmware", pi("a02082", "armv7l"), map[string]string{"/boot/firmware/config.txt": ""}, piConfigBoot{}, "/boot/firmware", nil, ""},
		{"Pi 4", pi("c03111", "aarch64"), map[string]string{"/boot/firmware/config.txt": ""}, piTrybootBoot{}, "/boot/firmware", nil, ""},
		{"Pi 5, old layout", pi("c04170", "aarch64"), map[string]string{"/boot/config.txt": ""}, piTrybootBoot{}, "/boot", nil, ""},
		{"Pi 4 with autoboot.txt", pi("c03111", "aarch64"), map[string]string{"/boot/firmware/config.txt": "", "/boot/firmware/autoboot.txt": "[all]\ntryboot_a_b=1\n"}, piConfigBoot{}, "/boot/firmware", nil, "autoboot.txt exists"},
		{"BeagleBone", devicetype.Device{Name: "BeagleBone Black", Slugs: []string{"beaglebone-black"}, Family: devicetype.FamilyBeagleBone}, nil, beagleBoneBoot{}, "/boot", nil, ""},
		{"extlinux board", devicetype.Device{Name: "BeaglePlay", Slugs: []string{"beagleplay"}, Family: devicetype.FamilyExtlinux}, nil, nil, "", ErrDeviceType, "extlinux.conf"},
		{"no family", devicetype.Device{Name: "Mystery", Slugs: []string{"x"}}, nil, nil, "", ErrDeviceType, "no boot setup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.tree)
			var log bytes.Buffer
			s, dir, err := files{root}.chooseBoot(tc.device, &Log{W: &log})
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.words) {
					t.Fatalf("want %v with %q, got %v", tc.err, tc.words, err)
				}
				return
			}
			if err != nil || s != tc.want || dir != tc.dir {
				t.Fatalf("got %T in %s (%v), want %T in %s", s, dir, err, tc.want, tc.dir)
			}
			if !strings.Contains(log.String(), tc.words) {
				t.Errorf("log lacks %q: %s", tc.words, log.String())
			}
		})
	}
}
