package spool

import (
	"errors"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var timeZero time.Time

// readNames lists a directory's entries (names only, unsorted).
func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// RecoverOrphans hands back every claim in tmp/ whose owner is dead (its
// lock is free) to the directory it came from, and removes temporary files
// left by dead writers. A live owner's claim is never touched. It returns
// the ids handed back.
func (db *DB) RecoverOrphans() ([]string, error) {
	names, err := readNames(db.Path(Tmp))
	if err != nil {
		return nil, err
	}
	var back []string
	for _, n := range names {
		p := db.Path(Tmp, n)
		switch {
		case strings.HasPrefix(n, writePrefix):
			removeIfUnlocked(p, writerGrace(n))
		case strings.HasPrefix(n, workerPrefix):
			removeIfUnlocked(p, 0)
		default:
			from, name, ok := parseClaimName(n)
			if !ok {
				continue
			}
			id, ok, err := db.returnOrphan(p, from, name)
			if err != nil {
				return back, err
			}
			if ok {
				back = append(back, id)
			}
		}
	}
	return back, nil
}

func (db *DB) returnOrphan(p string, from Dir, name string) (string, bool, error) {
	f, err := lockFile(p)
	if errors.Is(err, ErrBusy) || errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	if !sameFile(f, p) {
		return "", false, nil
	}
	if err := db.renameSync(p, db.Path(from, name)); err != nil && !errors.Is(err, ErrNotSynced) {
		return "", false, err
	}
	id, _, _ := ParseName(name)
	return id, true, nil
}

// writerGrace is how old an unlocked temporary file must be before it is
// removed: at once when its writer was a process of this host that is
// dead, else a minute (a live writer creates the file a moment before it
// locks it).
func writerGrace(name string) time.Duration {
	pid, host, ok := writerOf(name)
	if me, _ := os.Hostname(); ok && host == me && unix.Kill(pid, 0) == unix.ESRCH {
		return 0
	}
	return time.Minute
}

// removeIfUnlocked deletes p when nobody holds its lock and it is older
// than minAge (a writer creates its temp file a moment before locking it).
func removeIfUnlocked(p string, minAge time.Duration) {
	st, err := os.Stat(p)
	if err != nil || time.Since(st.ModTime()) < minAge {
		return
	}
	f, err := lockFile(p)
	if err != nil {
		return
	}
	defer f.Close()
	if sameFile(f, p) {
		os.Remove(p)
	}
}

// ReadNames lists a directory's entries, names only and unsorted: for
// packages that watch the database (rollout, status).
func ReadNames(dir string) ([]string, error) { return readNames(dir) }
