package stage1

import (
	"context"
	"errors"
	"fmt"
	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
	"github.com/fleetmig/balena-migrate/internal/device/netconf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Host is everything stage 1 asks of the machine other than plain files:
// identity, commands, free space and the network. Files are read and written
// under Root(), which is "/" on a device and a fixture tree in tests, so the
// same logic runs against both.
type Host interface {
	Root() string
	Getuid() int
	Uname() (machine, release string, err error)
	// Run executes a program (a path on the device) and returns its
	// combined output. env entries are added to the environment.
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
	// FreeSpace returns the bytes available to root on the filesystem holding path.
	FreeSpace(path string) (uint64, error)
	// Probe probes the endpoints balenaOS will use, from this device.
	Probe(ctx context.Context, p *endpoints.Prober, eps []endpoints.Endpoint) []endpoints.Result
	// Network reads the running network: links, default routes, the
	// link of the SSH session stage 1 runs in.
	Network() (netconf.Live, error)
	Now() time.Time
	// Sync makes a file or directory durable (fsync).
	Sync(path string) error
}

// systemPath is the PATH programs stage 1 runs get.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// OSHost is the real machine.
type OSHost struct{}

var _ Host = OSHost{}

// Root is "/".
func (OSHost) Root() string { return "/" }

// Getuid returns the real user id.
func (OSHost) Getuid() int { return os.Getuid() }

// Uname returns uname -m and uname -r.
func (OSHost) Uname() (string, string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Machine[:]), unix.ByteSliceToString(u.Release[:]), nil
}

// Run executes name with args.
func (OSHost) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// Over SSH or sudo the PATH may lack the sbin directories that
	// update-grub and mkinitramfs call into; the last PATH wins.
	cmd.Env = append(append(os.Environ(), "PATH="+systemPath), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out, 5))
	}
	return out, nil
}

// FreeSpace uses statfs.
func (OSHost) FreeSpace(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Probe probes the endpoints from this machine.
func (OSHost) Probe(ctx context.Context, p *endpoints.Prober, eps []endpoints.Endpoint) []endpoints.Result {
	return p.Probe(ctx, eps)
}

// Network reads this machine's running network; the SSH session is the
// one stage 1 was started from (sudo drops SSH_CONNECTION, its parents
// keep it).
func (OSHost) Network() (netconf.Live, error) { return netconf.ReadLive(netconf.SSHConnection()) }

// Now is the wall clock.
func (OSHost) Now() time.Time { return time.Now() }

// Sync fsyncs the file or directory at path.
func (OSHost) Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// files resolves device paths under the host's root.
type files struct{ root string }

func (f files) p(name string) string { return filepath.Join(f.root, name) }

func (f files) read(name string) ([]byte, error) { return os.ReadFile(f.p(name)) }

func (f files) exists(name string) bool {
	_, err := os.Lstat(f.p(name))
	return err == nil
}

func (f files) stat(name string) (fs.FileInfo, error) { return os.Stat(f.p(name)) }

// lookPath finds an executable program in the usual directories of the device.
func (f files) lookPath(prog string) (string, error) {
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(f.p(p)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", prog, fs.ErrNotExist)
}

// realpath resolves symlinks of a device path inside the root.
func (f files) realpath(name string) (string, error) {
	r, err := filepath.EvalSymlinks(f.p(name))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(f.root, r)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%s resolves outside %s", name, f.root)
	}
	return "/" + filepath.ToSlash(rel), nil
}

var errNoSpace = errors.New("not enough space")
