package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Locks are open-file-description (OFD) write locks over the whole file,
// taken on descriptors opened for writing. Like flock they belong to one
// open file and die with the process; unlike flock, Linux sends them to an
// NFS server as byte-range locks, so they hold between hosts sharing the
// database over NFSv4 (an exclusive flock on a read-only descriptor is
// refused by the NFS client, and older clients kept flock per host).

// lockFD takes the write lock on f, waiting for it when wait is set.
func lockFD(f *os.File, wait bool) error {
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return ErrBusy
		}
		return err
	}
}

// lockFile opens path for writing and takes its lock without waiting. It
// returns ErrBusy when another process (here or on another NFS client)
// holds the lock, and os.ErrNotExist when the file is gone.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := lockFD(f, false); err != nil {
		f.Close()
		if errors.Is(err, ErrBusy) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// sameFile reports whether the locked file f is still the file at path, so
// a lock taken on an old inode is never mistaken for a lock on its
// successor. Taking a lock makes the NFS client drop its cached attributes,
// so the link count read here is the server's: a file that was replaced by
// a rename while we waited has none left, even when a cached directory
// entry still shows the old name.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	if st, ok := a.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// writeLocked writes data to a new temporary file in dir, fsyncs it and
// returns it open and locked, ready to be renamed into place. The lock is
// taken before the file becomes visible under a claim name, so no other
// worker can ever see an unlocked claim of a live owner.
func writeLocked(dir string, data []byte, perm os.FileMode) (*os.File, error) {
	f, err := os.CreateTemp(dir, writerPattern())
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if err := lockFD(f, true); err != nil {
		return fail(err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return f, nil
}

// writerPattern names a temporary file after its writer's pid and host,
// so a worker on the same host can clean up after a dead writer at once
// instead of waiting for the file to age; on other hosts the pid means
// nothing.
func writerPattern() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s%d@%s-*", writePrefix, os.Getpid(), host)
}

// writerOf undoes writerPattern.
func writerOf(name string) (pid int, host string, ok bool) {
	rest, found := strings.CutPrefix(name, writePrefix)
	if !found {
		return 0, "", false
	}
	pidPart, rest, found := strings.Cut(rest, "@")
	i := strings.LastIndexByte(rest, '-')
	if !found || i < 0 {
		return 0, "", false
	}
	pid, err := strconv.Atoi(pidPart)
	return pid, rest[:i], err == nil && pid > 0
}

// ErrNotSynced wraps a directory fsync that failed after a rename had
// already happened: the file is at its new name (as far as this kernel
// knows), but may not be there after a crash.
var ErrNotSynced = errors.New("directory not synced after rename")

// renameSync renames and fsyncs both directories involved. An error that
// wraps ErrNotSynced means the rename itself was done.
func (db *DB) renameSync(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	err := db.syncDir(filepath.Dir(to))
	if filepath.Dir(from) != filepath.Dir(to) {
		if err2 := db.syncDir(filepath.Dir(from)); err == nil {
			err = err2
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotSynced, to, err)
	}
	return nil
}

// syncDir fsyncs a directory; tests replace it to inject faults.
func (db *DB) syncDir(dir string) error {
	if db.dirSync != nil {
		return db.dirSync(dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// filePerm is 0600 for files holding secrets, 0640 otherwise.
func filePerm(secret bool) os.FileMode {
	if secret {
		return 0o600
	}
	return 0o640
}
