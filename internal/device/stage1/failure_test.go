package stage1

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

func TestClassOf(t *testing.T) {
	enospc := &fs.PathError{Op: "write", Path: "/home/mig/backup.tgz", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name string
		err  error
		want devproto.Class
	}{
		{"usage", usage.Errorf("IMAGE_NAME is not set"), devproto.ClassConfigError},
		{"ENOSPC deep down", fmt.Errorf("%w: write x: %w", ErrInitramfs, enospc), devproto.ClassNoSpace},
		{"space check", fmt.Errorf("%w on /: 3 MiB free", errNoSpace), devproto.ClassNoSpace},
		{"backup out of space is no_space", fmt.Errorf("%w: %w", ErrBackup, enospc), devproto.ClassNoSpace},
		{"EROFS", fmt.Errorf("write /etc/balena-migrate-stage2.conf: %w", &fs.PathError{Op: "open", Path: "/etc/x", Err: syscall.EROFS}), devproto.ClassReadOnly},
		{"balenaOS", fmt.Errorf("%w: ID=balena-os", ErrAlreadyBalena), devproto.ClassAlreadyBalena},
		{"OS", fmt.Errorf("%w: ubuntu 12.04", ErrOS), devproto.ClassOS},
		{"board", fmt.Errorf("%w: RockPro64", ErrDeviceType), devproto.ClassDeviceType},
		{"image for another board", fmt.Errorf("%w: raspberrypi4-64", ErrWrongDevice), devproto.ClassDeviceType},
		{"backup script", fmt.Errorf("%w: BACKUP_SCRIPT: exit status 1", ErrBackup), devproto.ClassBackup},
		// the word "backup" in a message is not the backup step
		{"boot-file backup", fmt.Errorf("%w: backup of config.txt: %w", ErrBootSetup, fs.ErrPermission), devproto.ClassStage1},
		{"text mentioning no space", errors.New("mkinitramfs: No space left on device"), devproto.ClassStage1},
		{"other", fmt.Errorf("%w: grub-reboot", ErrBootSetup), devproto.ClassStage1},
	} {
		if got := ClassOf(tc.err); got != tc.want {
			t.Errorf("%s: ClassOf(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestFailedLine(t *testing.T) {
	var b bytes.Buffer
	l := &Log{W: &b, Now: func() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC) }}
	l.Failed(fmt.Errorf("%w: mkinitramfs: exit status 1: W: missing\nE: no space", ErrInitramfs))
	want := "[2024-05-06T07:08:09Z balena-migrate] ERROR: failed (stage1): initramfs build failed: mkinitramfs: exit status 1: W: missing | E: no space\n"
	if b.String() != want {
		t.Fatalf("got  %q\nwant %q", b.String(), want)
	}
	if !regexp.MustCompile(`ERROR: failed \(([a-z0-9_]+)\): `).MatchString(b.String()) {
		t.Fatal("the fleet's pattern does not match")
	}
}
