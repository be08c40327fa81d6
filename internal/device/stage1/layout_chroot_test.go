package stage1

// Disk layouts stage 2 or grub cannot work with, tried for real: Debian 12
// chroots on loop disks whose pre-flight (--pretend) used to pass, and that
// stage 1 now refuses before anything is registered, changing nothing.

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// readyChroot puts the binary, an image and a config into the chroot's
// migration directory at home.
func readyChroot(t *testing.T, c *chroot, home string) {
	img, _ := diskImage(t)
	staticBinary(t, c.path(home+"/balena-migrate"))
	c.write(home+"/resin-genericx86-64-2.99.0-test.img.gz", string(img), 0o644)
	c.write(home+"/balena-migrate.conf", "IMAGE_NAME=resin-genericx86-64-2.99.0-test.img.gz\nBACKUP_DIRECTORIES=/etc/default\n"+
		"BALENA_API_HOST=\nBALENA_VPN_HOST=\nMEM_MIN_FREE_S1=16M\nNETWORK_CHECK=FALSE\n", 0o644)
}

// refusedPretend runs --pretend from home and wants it refused as stage1
// (a disk layout) with want in the verdict, and nothing changed.
func refusedPretend(t *testing.T, c *chroot, home, want string) {
	t.Helper()
	refusedPretendAs(t, c, home, "ERROR: failed (stage1): unsupported disk layout: ", want)
}

func refusedPretendAs(t *testing.T, c *chroot, home, verdict, want string) {
	t.Helper()
	before := c.snapshot("/boot", "/etc")
	out, code := c.runHome(nil, "", home, "--pretend")
	line := verdictLine(out, verdict)
	if code != 1 || !strings.Contains(line, want) {
		t.Fatalf("want the pre-flight refused as %q naming %q, got exit %d:\n%s", verdict, want, code, out)
	}
	if d := diffSnapshots(before, c.snapshot("/boot", "/etc")); len(d) > 0 {
		t.Fatalf("a refused run changed the system:\n%s", strings.Join(d, "\n"))
	}
}

// verdictLine is the log line of out that holds verdict ("" if none): the
// program's own error line on stderr may come before or after it.
func verdictLine(out, verdict string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, verdict) {
			return l
		}
	}
	return ""
}

// 4096-byte logical sectors (4Kn): a balenaOS image counts 512-byte ones.
func TestChrootRefuses4KSectorDisk(t *testing.T) {
	t.Parallel()
	c := newChrootWith(t, "bookworm", chrootDisk{sector: 4096})
	readyChroot(t, c, chrootHome)
	refusedPretend(t, c, chrootHome, "has 4096-byte logical sectors")
}

// A btrfs root: its device number names no disk for stage 2, and grub
// cannot clear its one-shot choice on it.
func TestChrootRefusesBtrfsRoot(t *testing.T) {
	t.Parallel()
	c := newChrootWith(t, "bookworm", chrootDisk{fs: "btrfs"})
	readyChroot(t, c, chrootHome)
	refusedPretend(t, c, chrootHome, "/ is on btrfs")
}

// A migration directory on a file system of its own (the Debian
// installer's separate /home), a separate /usr, a flasher image given as
// the image and a backup larger than the image's resin-data.
func TestChrootRefusedPreflights(t *testing.T) {
	t.Parallel()
	c := newChroot(t, "bookworm")
	t.Run("HOME_DIR", func(t *testing.T) {
		const home = "/srv/home/migrate"
		if err := os.MkdirAll(c.path("/srv/home"), 0o755); err != nil {
			t.Fatal(err)
		}
		sh(t, "mount", "-t", "tmpfs", "-o", "size=64m", "homefs", c.path("/srv/home"))
		defer sh(t, "umount", c.path("/srv/home"))
		readyChroot(t, c, home)
		refusedPretend(t, c, home, "HOME_DIR "+home+" is on homefs (tmpfs, mounted on /srv/home)")
	})
	t.Run("/usr", func(t *testing.T) {
		readyChroot(t, c, chrootHome)
		sh(t, "mount", "--bind", c.path("/usr"), c.path("/usr"))
		defer sh(t, "umount", c.path("/usr"))
		refusedPretend(t, c, chrootHome, "/usr is a file system of its own")
	})
	dir := t.TempDir()
	inner, err := testimg.BalenaOS(filepath.Join(dir, "balena.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("flasher image", func(t *testing.T) {
		flasher, err := testimg.Flasher(filepath.Join(dir, "flasher.img"), inner.Path, testimg.FlasherFiles{ImageName: "balena.img"})
		if err != nil {
			t.Fatal(err)
		}
		readyChroot(t, c, chrootHome)
		c.write(chrootHome+"/resin-genericx86-64-2.99.0-test.img.gz", string(gz(mustRead(t, flasher.Path))), 0o644)
		refusedPretendAs(t, c, chrootHome, "ERROR: failed (stage1): bad image: ", "is a balenaOS flasher image")
	})
	t.Run("backup larger than resin-data", func(t *testing.T) {
		readyChroot(t, c, chrootHome)
		c.write(chrootHome+"/resin-genericx86-64-2.99.0-test.img.gz", string(gz(mustRead(t, inner.Path))), 0o644)
		big := make([]byte, 80<<20) // incompressible, against 22 MiB
		rand.Read(big)
		c.write("/srv/data/blob", string(big), 0o644)
		conf := string(mustRead(t, c.path(chrootHome+"/balena-migrate.conf")))
		c.write(chrootHome+"/balena-migrate.conf", strings.Replace(conf, "BACKUP_DIRECTORIES=/etc/default", "BACKUP_DIRECTORIES=/srv/data", 1), 0o644)
		refusedPretendAs(t, c, chrootHome, "ERROR: failed (no_space): ", "do not fit resin-data")
	})
}
