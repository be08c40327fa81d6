package stage1

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

// Every file stage 2 reads and every boot-file backup is fsynced, with its
// directory, before the boot setup points at stage 2; grub.cfg before
// grubenv names our entry.
func TestDurableBeforeBootChange(t *testing.T) {
	static := buildStatic(t)
	for _, f := range []fixture{fixtures[0], fixtures[1], fixtures[2]} {
		t.Run(f.name, func(t *testing.T) {
			d := newDevice(t, f, static)
			d.cfg.NoSetup, d.cfg.Debug = false, true
			if _, err := d.run(); err != nil {
				t.Fatalf("%v\n%s", err, d.log.String())
			}
			if !d.host.bootChanged() {
				t.Fatal("the boot setup was not done")
			}
			before := map[string]bool{}
			for _, c := range d.host.synced {
				if !c.bootChanged {
					before[c.path] = true
				}
			}
			s2 := loadS2(t, d)
			want := []string{d.cfg.ImageName, filepath.Join(d.home, "backup.tgz"), s2config.DefaultPath,
				filepath.Join(d.home, initramfsName(d.release)), d.home, "/etc"}
			for _, n := range s2.NetworkConfigs {
				want = append(want, filepath.Join(d.home, n))
			}
			base := "/"
			if s2.MountBoot {
				base = d.layoutBoot(t)
			}
			for _, p := range s2.RestoreBootFiles {
				want = append(want, filepath.Join(base, p.Backup), filepath.Dir(filepath.Join(base, p.Backup)))
			}
			if f.machine == "x86_64" {
				want = append(want, "/boot/grub/grub.cfg", "/boot/grub")
			}
			for _, p := range want {
				if !before[p] {
					t.Errorf("%s was not synced before the boot change (synced: %v)", p, d.host.synced)
				}
			}
			if f.machine == "x86_64" && !synced(d.host.synced, "/boot/grub/grubenv") {
				t.Error("grubenv was not synced")
			}
			// tryboot: what the tryboot reboot reads is synced before stage 1 ends
			if f.name == "pi4-rpios12" {
				for _, p := range []string{"/boot/firmware/tryboot.txt", "/boot/firmware/balena-migrate-cmdline.txt",
					"/boot/firmware/" + initramfsName(d.release), "/boot/firmware"} {
					if !synced(d.host.synced, p) {
						t.Errorf("%s was not synced (synced: %v)", p, d.host.synced)
					}
				}
			}
		})
	}
}

func synced(calls []syncCall, path string) bool {
	for _, c := range calls {
		if c.path == path {
			return true
		}
	}
	return false
}

// layoutBoot is the boot directory of a fixture whose boot files live on a
// separate partition (/boot or /boot/firmware).
func (d *device) layoutBoot(t *testing.T) string {
	for _, l := range strings.Split(d.read(t, "/proc/self/mountinfo"), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], "/boot") {
			return f[4]
		}
	}
	t.Fatal("no boot mount in mountinfo")
	return ""
}
