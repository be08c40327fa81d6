package stage1

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// The image is checked as stage 2 will use it, in the pre-flight: a flasher
// image, an image without resin-data, a resin-data this kernel cannot mount
// and a backup that does not fit it are refused, and nothing changes.
func TestImageCheckedAsStage2UsesIt(t *testing.T) {
	static := buildStatic(t)
	dir := t.TempDir()
	balena, err := testimg.BalenaOS(filepath.Join(dir, "balena.img"))
	if err != nil {
		t.Fatal(err)
	}
	raw := mustRead(t, balena.Path)
	flasher, err := testimg.Flasher(filepath.Join(dir, "flasher.img"), balena.Path, testimg.FlasherFiles{ImageName: "balena.img"})
	if err != nil {
		t.Fatal(err)
	}
	noData, err := testimg.Build(filepath.Join(dir, "nodata.img"), 24*testimg.MiB, []testimg.Part{
		{Size: 16 * testimg.MiB, Type: "c", FS: "vfat", Label: testimg.LabelBoot},
		{Size: 4 * testimg.MiB, Type: "83", RandSeed: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	// casefold (Linux 5.2) on resin-data, for a 4.15 kernel.
	casefold := append([]byte(nil), raw...)
	sb := balena.Parts[5].Start + 1024 + 0x60
	binary.LittleEndian.PutUint32(casefold[sb:], binary.LittleEndian.Uint32(casefold[sb:])|0x20000)
	big := make([]byte, 30<<20) // more than resin-data's 22 MiB, incompressible
	rand.Read(big)

	for _, tc := range []struct {
		name    string
		image   []byte
		backup  []byte // a file in the backed-up directory
		class   devproto.Class
		wantErr error
		want    []string
	}{
		{"a flasher image", gz(mustRead(t, flasher.Path)), nil, devproto.ClassStage1, ErrImage,
			[]string{"is a balenaOS flasher image (partitions flash-boot, flash-rootA, flash-data)", "balena-migrate extract --img OUT.img.gz"}},
		{"no resin-data", gz(mustRead(t, noData.Path)), nil, devproto.ClassStage1, ErrImage, []string{`no partition labelled "resin-data"`}},
		{"resin-data this kernel cannot mount", gz(casefold), nil, devproto.ClassStage1, ErrImage,
			[]string{"uses ext4 features that kernel 4.15.0-20-generic cannot mount: casefold (Linux 5.2)"}},
		{"a backup larger than resin-data", gz(raw), big, devproto.ClassNoSpace, errNoSpace, []string{"do not fit resin-data in", "MiB free until balenaOS grows it"}},
		{"a backup that fits", gz(raw), big[:1<<20], "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, fixtures[2], static)
			d.cfg.NoSetup = true // the pre-flight
			d.cfg.ImageName = filepath.Join(d.home, fixtures[2].image)
			d.write(d.cfg.ImageName, tc.image)
			if tc.backup != nil {
				d.write("/srv/data/blob", tc.backup)
				d.cfg.BackupDirs = []string{"/srv/data"}
			}
			before := d.tree(t)
			_, err := d.run()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v\n%s", err, d.log.String())
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || ClassOf(err) != tc.class {
				t.Fatalf("got %v (class %s), want %v (class %s)", err, ClassOf(err), tc.wantErr, tc.class)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal lacks %q: %v", w, err)
				}
			}
			if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
				t.Fatalf("a refused run changed the device: %v", diff)
			}
		})
	}
}
