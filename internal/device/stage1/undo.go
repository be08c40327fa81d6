package stage1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// maxUndoCopy bounds the files the journal keeps in memory; larger ones are
// refused rather than changed without a way back.
const maxUndoCopy = 64 << 20

// Journal records every change stage 1 makes to the device so that a failure
// before the boot setup is complete can put everything back: changed files
// get their old bytes and mode again, added files and directories go, in the
// reverse order of the changes.
type Journal struct {
	files
	entries []undoEntry
}

type undoEntry struct {
	path  string // device path
	added bool
	data  []byte
	mode  fs.FileMode
	aside string // Replace: where the previous file or directory waits
}

func newJournal(root string) *Journal { return &Journal{files: files{root}} }

// Add records that path (a file or directory) is about to be created. It
// refuses to take over something that already exists, so a rollback never
// deletes what was there before.
func (j *Journal) Add(path string) error {
	if _, err := os.Lstat(j.p(path)); err == nil {
		return fmt.Errorf("%s already exists: remove it (left over from an earlier run?) and try again", path)
	}
	j.entries = append(j.entries, undoEntry{path: path, added: true})
	return nil
}

// Change records the current content of path, which is about to be
// rewritten or removed. A path that does not exist yet is recorded as added.
func (j *Journal) Change(path string) error {
	st, err := os.Lstat(j.p(path))
	if errors.Is(err, fs.ErrNotExist) {
		return j.Add(path)
	}
	if err != nil {
		return fmt.Errorf("backup of %s before changing it: %w", path, err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxUndoCopy {
		return fmt.Errorf("cannot keep a backup of %s (not a regular file under %d MiB): move it away and try again", path, maxUndoCopy>>20)
	}
	data, err := os.ReadFile(j.p(path))
	if err != nil {
		return fmt.Errorf("backup of %s before changing it: %w", path, err)
	}
	j.entries = append(j.entries, undoEntry{path: path, data: data, mode: st.Mode().Perm()})
	return nil
}

// Write records path and writes data to it atomically.
func (j *Journal) Write(path string, data []byte, perm fs.FileMode) error {
	if err := j.Change(path); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(j.p(path), "", data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Mkdir records and creates a new directory.
func (j *Journal) Mkdir(path string, perm fs.FileMode) error {
	if err := j.Add(path); err != nil {
		return err
	}
	return os.Mkdir(j.p(path), perm)
}

// Symlink records and creates a symbolic link at path to target; a
// previous one (an earlier run's) is kept aside as Replace does.
func (j *Journal) Symlink(target, path string) error {
	if err := j.Replace(path); err != nil {
		return err
	}
	return os.Symlink(target, j.p(path))
}

// Replace records that path, one of stage 1's own outputs (backup archive,
// initramfs, ...), is about to be created again. A previous one is moved
// aside, put back by Rollback and deleted by Commit.
func (j *Journal) Replace(path string) error {
	if _, err := os.Lstat(j.p(path)); errors.Is(err, fs.ErrNotExist) {
		return j.Add(path)
	}
	aside := path + ".balena-migrate-old"
	if err := os.RemoveAll(j.p(aside)); err != nil {
		return fmt.Errorf("remove %s: %w", aside, err)
	}
	if err := os.Rename(j.p(path), j.p(aside)); err != nil {
		return fmt.Errorf("move the previous %s aside: %w", path, err)
	}
	j.entries = append(j.entries, undoEntry{path: path, added: true, aside: aside})
	return nil
}

// Len is the number of recorded changes.
func (j *Journal) Len() int { return len(j.entries) }

// Rollback undoes every recorded change, newest first, and forgets them. It
// goes on after an error and reports all of them.
func (j *Journal) Rollback() error {
	var errs []error
	for i := len(j.entries) - 1; i >= 0; i-- {
		e := j.entries[i]
		p := j.p(e.path)
		if e.added {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", e.path, err))
			}
			if e.aside != "" {
				if err := os.Rename(j.p(e.aside), p); err != nil {
					errs = append(errs, fmt.Errorf("put back %s: %w", e.path, err))
				}
			}
			continue
		}
		if err := fsutil.WriteFileAtomic(p, "", e.data, e.mode); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", e.path, err))
		}
	}
	for _, e := range j.entries {
		_ = fsutil.SyncDir(filepath.Dir(j.p(e.path)))
	}
	j.entries = nil
	return errors.Join(errs...)
}

// Commit forgets the recorded changes: they are now meant to stay.
// Files moved aside by Replace are deleted.
func (j *Journal) Commit() error {
	var errs []error
	for _, e := range j.entries {
		if e.aside != "" {
			if err := os.RemoveAll(j.p(e.aside)); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", e.aside, err))
			}
		}
	}
	j.entries = nil
	return errors.Join(errs...)
}
