package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockFile opens path and takes an exclusive flock without waiting. It
// returns ErrBusy when another process holds the lock, and os.ErrNotExist
// when the file is gone.
func lockFile(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// sameFile reports whether the open file f is still the file at path, so a
// lock taken on an old inode is never mistaken for a lock on its successor.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
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
	// The writer's pid in the name lets others clean up after a dead
	// writer at once instead of waiting for the file to age.
	f, err := os.CreateTemp(dir, fmt.Sprintf("%s%d-*", writePrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
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

// renameSync renames and fsyncs both directories involved.
func renameSync(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return syncDir(filepath.Dir(from))
	}
	return nil
}

func syncDir(dir string) error {
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
