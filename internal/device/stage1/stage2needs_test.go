package stage1

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/envfile"
)

// What stage 2 is told to do with grub, and what goes into the initramfs
// for it, on the machines where stage 1 accepts it.
func TestStage2GetsOnlyWhatItCanFinish(t *testing.T) {
	static := buildStatic(t)
	for _, tc := range []struct {
		name     string
		fix      fixture
		setup    func(d *device)
		grub     string
		programs string
	}{
		{"BIOS with boot.img and core.img", fixtures[2], func(d *device) { grubFiles(d, 30000) }, s2config.GrubFlash, ""},
		// UEFI boots the image's own EFI loader: only grub.cfg is placed
		{"UEFI with grub.cfg only", fixtures[3], func(d *device) {
			d.cfg.GrubInstall, d.cfg.GrubCfg = true, filepath.Join(d.home, "grub.cfg")
			d.write(d.cfg.GrubCfg, []byte("menuentry x {}\n"))
		}, s2config.GrubFlash, ""},
		{"no GRUB_INSTALL", fixtures[2], func(d *device) {}, s2config.GrubNone, ""},
		{"MAX_BADBLOCKS carries badblocks", fixtures[2], func(d *device) { d.cfg.MaxBadblocks = "1%" }, s2config.GrubNone, "/usr/sbin/badblocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, tc.fix, static)
			d.cfg.NoSetup = true
			tc.setup(d)
			if _, err := d.run(); err != nil {
				t.Fatalf("%v\n%s", err, d.log.String())
			}
			s2 := loadS2(t, d)
			if s2.GrubInstall != tc.grub {
				t.Errorf("GRUB_INSTALL=%q, want %q", s2.GrubInstall, tc.grub)
			}
			// the identity stage 2 checks before it flashes (fakeDisk)
			if s2.DiskTableID != "mbr:1a2b3c4d" || s2.DiskSize != 62333952*512 || s2.RootPartStart != 2048*512 {
				t.Errorf("disk identity %q %d %d", s2.DiskTableID, s2.DiskSize, s2.RootPartStart)
			}
			hook, err := envfile.Read(d.path(filepath.Join(d.home, "initramfs-tools", "balena-migrate-hook.conf")))
			if err != nil {
				t.Fatal(err)
			}
			if got := hook.Value("BALENA_MIGRATE_PROGRAMS"); got != tc.programs {
				t.Errorf("BALENA_MIGRATE_PROGRAMS=%q, want %q", got, tc.programs)
			}
			if !strings.Contains(d.log.String(), "initramfs carries balena-migrate") {
				t.Error("the initramfs was not checked")
			}
		})
	}
}
