package stage2_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// After the point of no return the old system is gone: a write error during
// the flash (qemu's blkdebug fails one write to the disk with EIO, which the
// guest kernel reports as the disk's own) is not the end. Stage 2 flashes
// again from the image in RAM and the device gets balenaOS.
func TestVMStage2RetriesAFailedFlash(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false)
	rules := filepath.Join(fx.dir, "blkdebug.conf")
	// Sector 40960 (20 MiB in) is inside the image: the flash writes it.
	os.WriteFile(rules, []byte("[inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\nsector = \"40960\"\nonce = \"on\"\n"), 0o644)
	fx.blkdebug = rules
	res := fx.boot(t)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	for _, want := range []string{"flashing failed (attempt 1 of 3)", "input/output error", "flashing succeeded at attempt 2 of 3", "balenaOS installed"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	disk, _ := os.ReadFile(fx.disk)
	img, _ := os.ReadFile(fx.image.Path)
	boot := fx.image.Parts[0]
	if !bytes.Equal(disk[boot.End():fx.image.Parts[5].Start], img[boot.End():fx.image.Parts[5].Start]) {
		t.Error("the disk does not hold the image after the retried flash")
	}
	got, err := testimg.MReadFile(fx.disk, boot.Start, "config.json")
	if err != nil || !bytes.Equal(got, fx.config) {
		t.Errorf("resin-boot/config.json = %q, %v", got, err)
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}

// What the device needs to come online goes first: an image whose
// resin-data this kernel cannot mount (an ext4 feature it does not know)
// still gets config.json and the network files on resin-boot, and boots
// into balenaOS; only the backup and the log are lost, and the log says so.
func TestVMStage2WritesResinBootEvenWhenResinDataFails(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false, func(fx *vmFixture) {
		fx.patch = func(t *testing.T, img testimg.Image) {
			f, err := os.OpenFile(img.Path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// s_feature_incompat of resin-data's superblock: a bit no
			// kernel knows. The label and the ext4 magic stay.
			off := img.Parts[5].Start + 1024 + 0x60
			var b [4]byte
			f.ReadAt(b[:], off)
			binary.LittleEndian.PutUint32(b[:], binary.LittleEndian.Uint32(b[:])|0x80000000)
			if _, err := f.WriteAt(b[:], off); err != nil {
				t.Fatal(err)
			}
		}
	})
	res := fx.boot(t)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	for _, want := range []string{"resin-boot written and synced", "writing resin-data failed 3 times",
		"the backup and this log are not on resin-data; balenaOS boots with its config.json", "balenaOS installed"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	boot := fx.image.Parts[0]
	got, err := testimg.MReadFile(fx.disk, boot.Start, "config.json")
	if err != nil || !bytes.Equal(got, fx.config) {
		t.Errorf("resin-boot/config.json = %q, %v", got, err)
	}
	for n, d := range fx.wifi {
		if got, err := testimg.MReadFile(fx.disk, boot.Start, "system-connections/"+n); err != nil || !bytes.Equal(got, d) {
			t.Errorf("resin-boot/system-connections/%s = %q, %v", n, got, err)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}
