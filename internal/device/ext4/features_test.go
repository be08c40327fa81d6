package ext4

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// A file system made by mkfs.ext4 with features newer kernels brought:
// each release mounts what it knows, an unknown flag no release does.
func TestUnmountableFeatures(t *testing.T) {
	mkfs := testenv.NeedProgram(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "data.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 16<<20)
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", "resin-data", "-O", "metadata_csum,metadata_csum_seed,large_dir", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	raw, _ := os.ReadFile(img)
	sb, err := ParseSuperblock(raw[1024:2048])
	if err != nil {
		t.Fatal(err)
	}
	if sb.Label != "resin-data" || sb.BlockSize == 0 || sb.FreeBytes <= 8<<20 || sb.FreeBytes >= 16<<20 {
		t.Errorf("superblock %+v", sb)
	}
	for release, want := range map[string][]string{
		"6.1.0-28-arm64": nil,
		"4.19.66-v7+":    nil,
		"4.9.0-13-armmp": {"large_dir (Linux 4.13)"},
		"4.1.21-v7+":     {"large_dir (Linux 4.13)", "metadata_csum_seed (Linux 4.4)"},
		"3.4.0":          {"large_dir (Linux 4.13)", "metadata_csum (Linux 3.6)", "metadata_csum_seed (Linux 4.4)"},
	} {
		if got := sb.Unmountable(release); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", release, got, want)
		}
	}
	b := append([]byte(nil), raw[1024:2048]...)
	binary.LittleEndian.PutUint32(b[0x60:], binary.LittleEndian.Uint32(b[0x60:])|0x80000000)
	sb, _ = ParseSuperblock(b)
	if got := sb.Unmountable("6.18.0"); !reflect.DeepEqual(got, []string{"unknown incompat flags 0x80000000"}) {
		t.Errorf("an unknown flag: %q", got)
	}
	if _, err := ParseSuperblock(make([]byte, 1024)); err != ErrNotExt4 {
		t.Errorf("no superblock: %v", err)
	}
}
