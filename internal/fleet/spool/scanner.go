package spool

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"os"
	"sort"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"golang.org/x/sys/unix"
)

// Entry is a unit file that is due.
type Entry struct {
	Name string
	Due  time.Time
	// Note is what the scanner's note function said of the unit when it
	// read the file (nil without one, or for a file that is not a unit).
	Note any
}

// Scanner keeps the due times of the units of one directory. Unit files
// are never rewritten in place, so a file is read once and then known by
// its inode and mtime. Scan lists the whole directory (at start-up, as a
// safety net, after lost events); between scans the caller reports the
// names its file watch saw change (Changed) and Refresh looks at those
// alone, so an event costs the same in a directory of ten units or of a
// hundred thousand. A full listing can be done in steps between claims:
// listing 100,000 files takes tens of milliseconds (seconds when they are
// new), longer than a claim may wait. Future due times wait in a heap: finding what has
// become due, and when the next unit will, does not visit every unit.
type Scanner struct {
	db      *DB
	dir     Dir
	dueOf   func(*unit.Unit) time.Time
	files   map[string]*known
	changed map[string]bool // names to look at again at the next Refresh
	ready   map[string]int64
	later   dueHeap
	seq     uint64
	pass    uint64   // counts full listings
	list    *listing // the full listing under way, if any
	// note, when set, is asked about each unit as it is read.
	note func(*unit.Unit) any
	// held: due files kept out of the due list, by the key that holds
	// them (see Hold).
	held map[string]map[string]bool
}

// known is what a scanner remembers of one file.
type known struct {
	ino   uint64
	mtime int64
	due   int64  // unix nanoseconds
	seq   uint64 // matches the heap entry that is current
	pass  uint64 // the last full listing that saw the file
	note  any
	hold  string // the key holding it back, if any
}

// NewScanner watches directory d; dueOf computes a unit's due time (DUE_TS
// when nil).
func (db *DB) NewScanner(d Dir, dueOf func(*unit.Unit) time.Time) *Scanner {
	return &Scanner{db: db, dir: d, dueOf: dueOf, files: map[string]*known{},
		changed: map[string]bool{}, ready: map[string]int64{}, held: map[string]map[string]bool{}}
}

// SetNote makes the scanner ask note about each unit it reads; the answer
// comes back in the unit's Entry, so a caller can decide about a due unit
// without reading its file again.
func (s *Scanner) SetNote(note func(*unit.Unit) any) { s.note = note }

// Hold keeps the due file name out of what Refresh and Scan report until
// Release(key), or until the file changes (it is then judged afresh). A
// caller holds units it may not take now — a paused rollout, a wave not
// yet open — so that a wake-up does not go through them again.
func (s *Scanner) Hold(name, key string) {
	k, ok := s.files[name]
	if !ok {
		return
	}
	s.unhold(name, k)
	delete(s.ready, name)
	k.hold = key
	if s.held[key] == nil {
		s.held[key] = map[string]bool{}
	}
	s.held[key][name] = true
}

// Release reports the files held by key as due again.
func (s *Scanner) Release(key string) {
	for n := range s.held[key] {
		if k, ok := s.files[n]; ok && k.hold == key {
			k.hold = ""
			s.ready[n] = k.due
		}
	}
	delete(s.held, key)
}

// HeldKeys lists the keys holding files.
func (s *Scanner) HeldKeys() []string {
	keys := make([]string, 0, len(s.held))
	for k := range s.held {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Held counts the files held back.
func (s *Scanner) Held() int {
	n := 0
	for _, names := range s.held {
		n += len(names)
	}
	return n
}

// Known counts the unit files the scanner knows.
func (s *Scanner) Known() int { return len(s.files) }

func (s *Scanner) unhold(name string, k *known) {
	if k.hold == "" {
		return
	}
	if names := s.held[k.hold]; names != nil {
		delete(names, name)
		if len(names) == 0 {
			delete(s.held, k.hold)
		}
	}
	k.hold = ""
}

// Changed notes that file name (a base name) may have appeared, gone or
// been replaced; the next Refresh reads it again.
func (s *Scanner) Changed(name string) { s.changed[name] = true }

// Scan lists the whole directory at once and returns the units due at now
// (earliest first) and the earliest due time after now (zero when none).
// A worker lists in steps instead (StartListing, Step) so that it keeps
// claiming while a large directory is listed.
func (s *Scanner) Scan(now time.Time) (due []Entry, next time.Time, err error) {
	if err := s.StartListing(); err != nil {
		return nil, timeZero, err
	}
	for done := false; !done; {
		if done, err = s.Step(now, time.Hour); err != nil {
			return nil, timeZero, err
		}
	}
	clear(s.changed)
	due, next = s.report(now)
	return due, next, nil
}

// listing is a full listing of the directory under way. The listing
// carries each file's inode: a known file whose inode is unchanged is not
// looked at again, so listing a large idle directory is one pass over its
// entries. Every deepEvery-th listing also compares mtimes, for a file
// replaced on another NFS client by one that reused its inode number.
type listing struct {
	dir    *os.File
	deep   bool
	buf    []byte
	n, off int // the part of buf not yet gone through
}

// deepEvery is how often (in listings) every file's mtime is checked too.
const deepEvery = 10

// StartListing begins a full listing of the directory (at start-up, as a
// safety net, after lost events); Step carries it out. A listing already
// under way goes on.
func (s *Scanner) StartListing() error {
	if s.list != nil {
		return nil
	}
	d, err := os.Open(s.db.Path(s.dir))
	if err != nil {
		return err
	}
	s.pass++
	s.list = &listing{dir: d, deep: s.pass%deepEvery == 1, buf: make([]byte, 16<<10)}
	return nil
}

// Listing reports whether a full listing is under way.
func (s *Scanner) Listing() bool { return s.list != nil }

// Step goes on with the listing for about budget and reports whether it
// is complete. Files looked at in between (Refresh) count as listed, so
// a listing in steps drops only files that are really gone.
func (s *Scanner) Step(now time.Time, budget time.Duration) (done bool, err error) {
	l := s.list
	if l == nil {
		return true, nil
	}
	start := time.Now()
	fd := int(l.dir.Fd())
	for i := 0; ; i++ {
		if i%32 == 31 && time.Since(start) >= budget {
			return false, nil
		}
		if l.off >= l.n {
			n, err := unix.Getdents(fd, l.buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				s.endListing()
				return true, err
			}
			if n <= 0 {
				break
			}
			l.n, l.off = n, 0
		}
		name, ino := direntAt(l.buf, &l.off)
		if len(name) == 0 || name[0] == '.' {
			continue
		}
		if k, ok := s.files[string(name)]; ok {
			k.pass = s.pass
			if l.deep || k.ino != ino {
				s.look(fd, string(name), false, now)
			}
			continue
		}
		if n := string(name); validName(n) {
			s.look(fd, n, false, now)
		}
	}
	// Files the listing did not show are gone.
	for n, k := range s.files {
		if k.pass != s.pass {
			s.drop(n)
		}
	}
	s.endListing()
	return true, nil
}

func (s *Scanner) endListing() {
	s.list.dir.Close()
	s.list = nil
}

func validName(n string) bool {
	_, _, ok := ParseName(n)
	return ok
}

// direntAt decodes the getdents64 record (struct linux_dirent64) at *off
// in buf and moves *off past it.
func direntAt(buf []byte, off *int) (name []byte, ino uint64) {
	ino = binary.NativeEndian.Uint64(buf[*off:])
	reclen := int(binary.NativeEndian.Uint16(buf[*off+16:]))
	name = buf[*off+19 : *off+reclen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	*off += reclen
	return name, ino
}

// Refresh looks again at the names reported by Changed, then returns what
// Scan returns.
func (s *Scanner) Refresh(now time.Time) (due []Entry, next time.Time, err error) {
	if len(s.changed) > 0 {
		d, err := os.Open(s.db.Path(s.dir))
		if err != nil {
			return nil, timeZero, err
		}
		for n := range s.changed {
			if _, _, ok := ParseName(n); ok {
				s.look(int(d.Fd()), n, true, now)
			}
		}
		d.Close()
		clear(s.changed)
	}
	due, next = s.report(now)
	return due, next, nil
}

// look stats file n (in the directory open as dirfd) and reads it when it
// is new or changed, or always with force. A file that cannot be parsed is
// due at once, so a worker claims it and moves it to fail/.
func (s *Scanner) look(dirfd int, n string, force bool, now time.Time) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		s.drop(n)
		return
	}
	mtime := st.Mtim.Nano()
	if k, ok := s.files[n]; ok && !force && k.ino == st.Ino && k.mtime == mtime {
		return
	}
	data, err := os.ReadFile(s.db.Path(s.dir, n))
	if err != nil {
		s.drop(n)
		return
	}
	var due int64
	var note any
	if u, err := unit.Parse(data); err == nil {
		if t := dueTime(u, s.dueOf); !t.IsZero() {
			due = t.UnixNano()
		}
		if s.note != nil {
			note = s.note(u)
		}
	}
	s.set(n, &known{ino: st.Ino, mtime: mtime, due: due, pass: s.pass, note: note}, now)
}

func (s *Scanner) set(n string, k *known, now time.Time) {
	if old, ok := s.files[n]; ok {
		s.unhold(n, old)
	}
	s.seq++
	k.seq = s.seq
	s.files[n] = k
	delete(s.ready, n)
	if k.due <= now.UnixNano() {
		s.ready[n] = k.due
		return
	}
	heap.Push(&s.later, waiting{due: k.due, name: n, seq: k.seq})
	// Entries of files that changed or went stay in the heap until they
	// surface; rebuild it when they outnumber the live ones.
	if len(s.later) > 2*len(s.files)+1024 {
		s.compact()
	}
}

func (s *Scanner) drop(n string) {
	if k, ok := s.files[n]; ok {
		s.unhold(n, k)
	}
	delete(s.files, n)
	delete(s.ready, n)
}

// current reports whether heap entry w still describes its file.
func (s *Scanner) current(w waiting) bool {
	k, ok := s.files[w.name]
	return ok && k.seq == w.seq
}

func (s *Scanner) compact() {
	live := s.later[:0]
	for _, w := range s.later {
		if s.current(w) {
			live = append(live, w)
		}
	}
	s.later = live
	heap.Init(&s.later)
}

// report moves what has become due at now from the heap to the ready set
// and returns the ready set, earliest first, and the next due time.
func (s *Scanner) report(now time.Time) ([]Entry, time.Time) {
	nowNs := now.UnixNano()
	for len(s.later) > 0 {
		w := s.later[0]
		if !s.current(w) {
			heap.Pop(&s.later)
			continue
		}
		if w.due > nowNs {
			break
		}
		heap.Pop(&s.later)
		s.ready[w.name] = w.due
	}
	due := make([]Entry, 0, len(s.ready))
	for n, t := range s.ready {
		due = append(due, Entry{Name: n, Due: fromNano(t), Note: s.files[n].note})
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].Due.Equal(due[j].Due) {
			return due[i].Due.Before(due[j].Due)
		}
		return due[i].Name < due[j].Name
	})
	var next time.Time
	if len(s.later) > 0 {
		next = fromNano(s.later[0].due)
	}
	return due, next
}

// fromNano turns a stored due time back into a time; 0 is "no due time".
func fromNano(ns int64) time.Time {
	if ns == 0 {
		return timeZero
	}
	return time.Unix(0, ns)
}

// waiting is a file due in the future.
type waiting struct {
	due  int64
	name string
	seq  uint64
}

// dueHeap orders waiting files by due time (container/heap).
type dueHeap []waiting

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(waiting)) }
func (h *dueHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}
