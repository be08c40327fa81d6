package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A record is a small file of the database that the workers of every host
// read and change: the rollout's state, the claims of a site. It is
// changed only by a process holding its lock, and replaced whole by a
// rename (the new version is written, fsynced and locked before it takes
// the name), so a reader without the lock sees one whole version and a
// crash leaves the old or the new one. The lock is the one units use (an
// OFD lock on a descriptor opened for writing), so it holds between NFS
// hosts; after taking it a process checks, with attributes fetched from
// the server, that the file it locked still has the name, and starts over
// when a writer replaced it meanwhile.

// Record is a record file locked by this process.
type Record struct {
	db   *DB
	path string
	f    *os.File
	// Data is the content read under the lock (empty for a new record).
	Data []byte
}

// recordPoll is how often a busy record is tried again while waiting.
const recordPoll = 5 * time.Millisecond

// LockRecord takes the lock on the record at path, creating it empty when
// it does not exist, waiting while another process holds it (until ctx
// ends), and reads it.
func (db *DB) LockRecord(ctx context.Context, path string) (*Record, error) {
	for {
		r, err := db.TryLockRecord(path)
		if !errors.Is(err, ErrBusy) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(recordPoll):
		}
	}
}

// TryLockRecord is LockRecord without waiting: ErrBusy when another
// process holds the lock.
func (db *DB) TryLockRecord(path string) (*Record, error) {
	for {
		f, err := lockFile(path)
		if errors.Is(err, os.ErrNotExist) {
			r, err := db.createRecord(path)
			if errors.Is(err, os.ErrExist) {
				continue // created by another process meanwhile
			}
			return r, err
		}
		if err != nil {
			return nil, err
		}
		if !sameFile(f, path) {
			// Replaced while we took the lock: lock the new one.
			f.Close()
			continue
		}
		data, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		return &Record{db: db, path: path, f: f, Data: data}, nil
	}
}

// createRecord makes an empty record at path, exclusively (O_EXCL: two
// creators never replace each other), and locks it. An empty record is a
// valid one, so another process may lock it first; then ErrBusy. It needs
// no fsync: a record lost to a power cut is an empty one again.
func (db *DB) createRecord(path string) (*Record, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	if err := lockFD(f, false); err != nil {
		f.Close()
		return nil, err
	}
	if !sameFile(f, path) {
		f.Close()
		return nil, os.ErrExist // replaced already: look again
	}
	return &Record{db: db, path: path, f: f}, nil
}

// Replace writes data as the record's new version, keeping the lock.
func (r *Record) Replace(data []byte) error {
	nf, err := writeLocked(r.db.Path(Tmp), data, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	if err := r.db.renameInto(nf.Name(), r.path); err != nil {
		if !errors.Is(err, ErrNotSynced) {
			nf.Close()
			os.Remove(nf.Name())
			return fmt.Errorf("write %s: %w", r.path, err)
		}
		// In place but perhaps not durable: still ours.
		r.f.Close()
		r.f, r.Data = nf, data
		return err
	}
	r.f.Close()
	r.f, r.Data = nf, data
	return nil
}

// Close releases the lock.
func (r *Record) Close() error { return r.f.Close() }

// WriteUnderRecord writes path (another file of the database, guarded by
// a record the caller holds) crash safe: temporary file, fsync, rename.
func (db *DB) WriteUnderRecord(path string, data []byte) error {
	f, err := writeLocked(db.Path(Tmp), data, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := db.renameInto(f.Name(), path); err != nil && !errors.Is(err, ErrNotSynced) {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// renameInto renames a temporary file over a record and fsyncs the
// record's directory only: a temporary file that comes back in tmp/ after
// a crash is removed as a dead writer's, so tmp/ need not be synced.
func (db *DB) renameInto(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := db.syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotSynced, path, err)
	}
	return nil
}

// RemoveUnderRecord removes path (guarded by a record the caller holds)
// and syncs its directory; a missing file is no error.
func (db *DB) RemoveUnderRecord(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return db.syncDir(filepath.Dir(path))
}

// Locate finds the unit with id and tag by its file names alone, without
// listing a directory: the directory it is in (Tmp while claimed), or ""
// when it is in none at this moment (deleted, or renamed between two of
// the looks: a caller must not take "" for gone without looking again).
func (db *DB) Locate(id, tag string) Dir {
	look := []struct {
		d    Dir
		name string
	}{
		{Units, FileName(Units, id, tag)},
		{Tmp, claimName(Units, FileName(Units, id, tag))},
		{Process, FileName(Process, id, tag)},
		{Tmp, claimName(Process, FileName(Process, id, tag))},
		{Done, FileName(Done, id, tag)},
		{Fail, FileName(Fail, id, tag)},
		{Tmp, claimName(Fail, FileName(Fail, id, tag))},
	}
	for _, l := range look {
		if _, err := os.Lstat(db.Path(l.d, l.name)); err == nil {
			return l.d
		}
	}
	return ""
}

// Index maps every unit id to where its files are, from a listing of every
// state directory (twice, so a unit renamed during the first pass is
// still seen). It costs a listing of the whole database.
func (db *DB) Index() (map[string][]Where, error) { return db.index() }
