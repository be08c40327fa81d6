package spool

import (
	"errors"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/unit"
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

// Entry is a unit file seen by a scan.
type Entry struct {
	Name string
	Due  time.Time
}

type cached struct {
	ino   uint64
	mtime time.Time
	due   time.Time
}

// Scanner lists the units of one directory with their due times. Unit files
// are never rewritten in place, so a file whose inode and mtime are unchanged
// since the last scan is not read again: a rescan of a large idle directory
// costs one readdir and one stat per file.
type Scanner struct {
	db    *DB
	dir   Dir
	dueOf func(*unit.Unit) time.Time
	cache map[string]cached
}

// NewScanner scans directory d; dueOf computes a unit's due time (DUE_TS
// when nil).
func (db *DB) NewScanner(d Dir, dueOf func(*unit.Unit) time.Time) *Scanner {
	return &Scanner{db: db, dir: d, dueOf: dueOf, cache: map[string]cached{}}
}

// Scan returns the units due at now (earliest first) and the earliest due
// time after now (zero when none).
func (s *Scanner) Scan(now time.Time) (due []Entry, next time.Time, err error) {
	names, err := readNames(s.db.Path(s.dir))
	if err != nil {
		return nil, timeZero, err
	}
	live := make(map[string]bool, len(names))
	for _, n := range names {
		if _, _, ok := ParseName(n); !ok {
			continue
		}
		t, ok := s.dueTime(n)
		if !ok {
			continue
		}
		live[n] = true
		if !t.After(now) {
			due = append(due, Entry{n, t})
		} else if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for n := range s.cache {
		if !live[n] {
			delete(s.cache, n)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].Due.Equal(due[j].Due) {
			return due[i].Due.Before(due[j].Due)
		}
		return due[i].Name < due[j].Name
	})
	return due, next, nil
}

// dueTime reads (or remembers) when file n is due. A file that cannot be
// parsed is due at once, so a worker claims it and moves it to fail/.
func (s *Scanner) dueTime(n string) (time.Time, bool) {
	p := s.db.Path(s.dir, n)
	st, err := os.Stat(p)
	if err != nil {
		return timeZero, false
	}
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	if c, ok := s.cache[n]; ok && c.ino == ino && c.mtime.Equal(st.ModTime()) {
		return c.due, true
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return timeZero, false
	}
	var t time.Time
	if u, err := unit.Parse(data); err == nil {
		t = dueTime(u, s.dueOf)
	}
	s.cache[n] = cached{ino: ino, mtime: st.ModTime(), due: t}
	return t, true
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
