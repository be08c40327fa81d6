package netconf

// The readers are tested in a real Debian 12 root with every network
// stack installed (scripts/test-setup.d/25-net-chroot): the files the
// packages ship are there, the stacks are detected as a device has them,
// and netplan's and ifupdown's own tools judge the setups written.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

var (
	baseOnce sync.Once
	baseDir  string
	baseErr  error
	rootSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("NETCONF_REACH_ROOT"); dir != "" {
		reachHelper(dir)
		return
	}
	code := m.Run()
	if baseDir != "" {
		os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// netrootTarball is where 25-net-chroot caches the root.
func netrootTarball(t *testing.T) string {
	script, err := os.ReadFile("../../../scripts/test-setup.d/25-net-chroot")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	return filepath.Join(testenv.Cache(), "debian-bookworm-netroot-"+hex.EncodeToString(sum[:])[:16]+".tar.zst")
}

// root is one test's device root: its own /etc, /run and /var, the
// programs of the shared Debian root.
type root struct {
	t   *testing.T
	dir string // on this machine
	in  string // the same directory inside the Debian root (for chroot)
}

// newRoot makes a fresh device root inside the Debian root, so that the
// Debian root's own tools can be run on it through chroot.
func newRoot(t *testing.T) *root {
	t.Helper()
	testenv.NeedRoot(t, "the Debian root keeps root-owned files")
	tarball := netrootTarball(t)
	testenv.NeedFile(t, tarball, "run scripts/test-setup.d/25-net-chroot; scripts/test does")
	baseOnce.Do(func() {
		baseDir, baseErr = os.MkdirTemp("", "netroot-")
		if baseErr == nil {
			out, err := exec.Command("tar", "-C", baseDir, "--numeric-owner", "-I", "zstd", "-xf", tarball).CombinedOutput()
			if err != nil {
				baseErr = fmt.Errorf("extract %s: %v: %s", tarball, err, out)
			}
		}
	})
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	in := fmt.Sprintf("/tmp/root-%d", rootSeq.Add(1))
	r := &root{t: t, dir: filepath.Join(baseDir, in), in: in}
	t.Cleanup(func() { os.RemoveAll(r.dir) })
	for _, d := range []string{"run", "var/lib", "tmp"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(baseDir, "etc"), r.dir).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v: %s", err, out)
	}
	// The programs are the Debian root's (Debian 12 keeps them all in
	// /usr; /bin, /sbin and /lib are links into it there as well).
	for _, l := range [][2]string{{"usr", "../../usr"}, {"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}} {
		if err := os.Symlink(l[1], filepath.Join(r.dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// write puts a file into the root.
func (r *root) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// link makes a symbolic link in the root.
func (r *root) link(name, target string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Symlink(target, p); err != nil {
		r.t.Fatal(err)
	}
}

func (r *root) remove(name string) {
	if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *root) fs() fs.FS { return os.DirFS(r.dir) }

// chroot runs a program of the Debian root.
func (r *root) chroot(args ...string) (string, error) {
	out, err := exec.Command("chroot", append([]string{baseDir}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// netplanGenerate renders the root's netplan YAML with netplan itself and
// returns the NetworkManager keyfiles it made.
func (r *root) netplanGenerate() []string {
	r.t.Helper()
	if out, err := r.chroot("netplan", "generate", "--root-dir", r.in); err != nil {
		r.t.Fatalf("netplan generate: %v\n%s", err, out)
	}
	ms, _ := filepath.Glob(filepath.Join(r.dir, "run/NetworkManager/system-connections/*"))
	return ms
}
