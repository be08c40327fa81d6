package stage1

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckMounts(t *testing.T) {
	const root = "25 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw\n26 25 8:1 / /boot/efi rw - vfat /dev/sda1 rw\n"
	ext4 := BootLayout{BootDir: "/boot", Root: Disk{Mount: Mount{Point: "/", FSType: "ext4", Source: "/dev/sda2"}},
		Boot: Disk{Mount: Mount{Point: "/", FSType: "ext4", Source: "/dev/sda2"}}}
	btrfsRoot := ext4
	btrfsRoot.Root.FSType, btrfsRoot.Boot.FSType = "btrfs", "btrfs"
	btrfsBoot := ext4
	btrfsBoot.Boot = Disk{Mount: Mount{Point: "/boot", FSType: "btrfs", Source: "/dev/sda3"}}
	zfsRoot := ext4
	zfsRoot.Root = Disk{Mount: Mount{Point: "/", FSType: "zfs", Source: "rpool/ROOT/debian"}}
	for _, tc := range []struct {
		name      string
		layout    BootLayout
		mountinfo string
		home      string
		want      string // "" passes
	}{
		{"all on /", ext4, root, "/home/pi/migrate", ""},
		{"btrfs root", btrfsRoot, root, "/root/migrate", "/ is on btrfs (/dev/sda2)"},
		{"btrfs /boot", btrfsBoot, root, "/root/migrate", "/boot is on btrfs (/dev/sda3)"},
		{"ZFS root", zfsRoot, root, "/root/migrate", "/ is on ZFS"},
		// The Debian installer's "separate /home" recipe.
		{"HOME_DIR on a separate /home", ext4, root + "27 25 8:3 / /home rw - ext4 /dev/sda3 rw\n", "/home/pi/migrate",
			"HOME_DIR /home/pi/migrate is on /dev/sda3 (ext4, mounted on /home)"},
		{"HOME_DIR on / beside a separate /home", ext4, root + "27 25 8:3 / /home rw - ext4 /dev/sda3 rw\n", "/root/migrate", ""},
		{"separate /usr", ext4, root + "27 25 8:4 / /usr rw - ext4 /dev/sda4 rw\n", "/root/migrate", "/usr is a file system of its own (/dev/sda4, ext4)"},
		{"/usr/local alone is fine", ext4, root + "27 25 8:4 / /usr/local rw - ext4 /dev/sda4 rw\n", "/root/migrate", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "proc/self"), 0o755)
			os.WriteFile(filepath.Join(dir, "proc/self/mountinfo"), []byte(tc.mountinfo), 0o644)
			err := files{dir}.checkMounts(tc.layout, tc.home)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBootLayout) {
				t.Fatalf("got %v, want an ErrBootLayout naming %q", err, tc.want)
			}
		})
	}
}
