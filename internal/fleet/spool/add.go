package spool

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// Where tells in which directory a unit file was found.
type Where struct {
	Dir  Dir
	Path string
}

// Find looks for every file of unit id in the state directories.
func (db *DB) Find(id string) ([]Where, error) {
	idx, err := db.index()
	if err != nil {
		return nil, err
	}
	return idx[id], nil
}

// index maps every unit id to where its files are. Each directory is listed
// twice, because a unit renamed backwards (tmp/ to units/) between two
// listings could otherwise slip past one pass.
func (db *DB) index() (map[string][]Where, error) {
	idx := map[string][]Where{}
	seen := map[string]bool{}
	for pass := 0; pass < 2; pass++ {
		for _, d := range StateDirs {
			names, err := readNames(db.Path(d))
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				un, ok := UnitName(d, n)
				p := db.Path(d, n)
				if !ok || seen[p] {
					continue
				}
				seen[p] = true
				id, _, _ := ParseName(un)
				idx[id] = append(idx[id], Where{d, p})
			}
		}
	}
	return idx, nil
}

// Unit ids ever added are kept in .ids/, one empty file per id named by
// it, so "is this id anywhere?" costs one exclusive create instead of a
// listing of every directory. Ids never start with '.', so the index's
// own files cannot clash with them.
const (
	idsLock     = ".lock"     // serialises adders
	idsComplete = ".complete" // every unit of the database has its file
)

// lockIDs serialises adders (on every host: the lock is a byte-range lock
// on a file opened for writing), creating .ids/ on first use. Call the
// returned function to unlock.
func (db *DB) lockIDs() (func(), error) {
	if err := os.Mkdir(db.Path(IDs), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	p := db.Path(IDs, idsLock)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFD(f, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

// indexIDs fills .ids/ from a listing of the whole database, once: for
// databases written before .ids/ existed. The caller holds lockIDs.
func (db *DB) indexIDs() error {
	if _, err := os.Stat(db.Path(IDs, idsComplete)); err == nil {
		return nil
	}
	idx, err := db.index()
	if err != nil {
		return err
	}
	for id := range idx {
		f, err := os.OpenFile(db.Path(IDs, id), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("index unit ids: %w", err)
		}
		f.Close()
	}
	if err := db.syncDir(db.Path(IDs)); err != nil {
		return fmt.Errorf("index unit ids: %w", err)
	}
	if err := os.WriteFile(db.Path(IDs, idsComplete), nil, 0o600); err != nil {
		return fmt.Errorf("index unit ids: %w", err)
	}
	return db.syncDir(db.Path(IDs))
}

// reserve creates the id files of units, all or none. An id file whose
// unit is nowhere in the database (removed by hand, or its adder died
// before writing it) is taken over; that check lists the database, but
// only on this rare path. The caller holds lockIDs.
func (db *DB) reserve(units []*unit.Unit) error {
	var made []string
	undo := func() {
		for _, p := range made {
			os.Remove(p)
		}
	}
	var idx map[string][]Where
	for _, u := range units {
		p := db.Path(IDs, u.ID())
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			made = append(made, p)
			continue
		}
		if !errors.Is(err, os.ErrExist) {
			undo()
			return err
		}
		if idx == nil {
			if idx, err = db.index(); err != nil {
				undo()
				return err
			}
		}
		if found := idx[u.ID()]; len(found) > 0 {
			undo()
			return fmt.Errorf("%w: unit %s is already in %s (%s)", ErrExists, u.ID(), found[0].Dir, found[0].Path)
		}
	}
	// The ids must be on disk before any unit is: a unit that survived a
	// crash without its id file could be added a second time.
	if err := db.syncDir(db.Path(IDs)); err != nil {
		undo()
		return err
	}
	return nil
}

// AddMany writes new units to units/, all or nothing as far as existence
// goes: if any id is already in the database, nothing is written. It returns
// the paths written.
func (db *DB) AddMany(units []*unit.Unit) ([]string, error) {
	unlock, err := db.lockIDs()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := db.indexIDs(); err != nil {
		return nil, err
	}
	if err := db.reserve(units); err != nil {
		return nil, err
	}
	ids := make([]string, len(units))
	for i, u := range units {
		ids[i] = u.ID()
	}
	// In the submission order before any unit exists, like the ids.
	if err := db.appendOrder(ids); err != nil {
		return nil, err
	}
	var paths []string
	for _, u := range units {
		p, err := db.write(Units, u, newTag())
		if err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Add writes one new unit to units/.
func (db *DB) Add(u *unit.Unit) (string, error) {
	p, err := db.AddMany([]*unit.Unit{u})
	if err != nil {
		return "", err
	}
	return p[0], nil
}

func (db *DB) write(d Dir, u *unit.Unit, tag string) (string, error) {
	data, err := u.Marshal()
	if err != nil {
		return "", fmt.Errorf("unit %s: %w", u.ID(), err)
	}
	f, err := writeLocked(db.Path(Tmp), data, filePerm(u.HasSecret()))
	if err != nil {
		return "", err
	}
	// A new unit is nobody's claim: unlock before it becomes visible so a
	// waiting worker can take it at once.
	f.Close()
	dst := db.Path(d, FileName(d, u.ID(), tag))
	if err := db.renameSync(f.Name(), dst); err != nil {
		if errors.Is(err, ErrNotSynced) {
			return dst, fmt.Errorf("unit %s written to %s, but it may not survive a crash: %w", u.ID(), dst, err)
		}
		os.Remove(f.Name())
		return "", err
	}
	return dst, nil
}

// Retry moves unit id from fail/ back to units/, clearing its failure and
// retry fields and keeping everything else; change, when not nil, may
// update the unit on the way (an error leaves it in fail/).
func (db *DB) Retry(id string, change func(*unit.Unit) error) (string, error) {
	found, err := db.Find(id)
	if err != nil {
		return "", err
	}
	var name string
	for _, w := range found {
		if w.Dir != Fail {
			return "", fmt.Errorf("unit %s is in %s (%s), not in fail/: only failed units can be retried", id, w.Dir, w.Path)
		}
		name = w.Path[strings.LastIndexByte(w.Path, '/')+1:]
	}
	if name == "" {
		return "", fmt.Errorf("%w: no unit %s in %s", ErrNotFound, id, db.Path(Fail))
	}
	c, err := db.Claim(Fail, name, timeZero, nil)
	if err != nil {
		return "", fmt.Errorf("unit %s: %w", id, err)
	}
	if c.Unit == nil {
		c.Release()
		return "", fmt.Errorf("unit %s: %s cannot be read: %w", id, name, c.ParseErr)
	}
	u := c.Unit.Clone()
	u.ClearFail()
	if change != nil {
		if err := change(u); err != nil {
			if rerr := c.Release(); rerr != nil {
				return "", fmt.Errorf("unit %s: %w (and handing it back to fail/ failed: %v)", id, err, rerr)
			}
			return "", fmt.Errorf("unit %s: %w", id, err)
		}
	}
	return c.Finish(Units, u)
}

// newTag returns a short random tag like mktemp's.
func newTag() string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}
