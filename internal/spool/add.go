package spool

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/unit"
	"golang.org/x/sys/unix"
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

// lockDB serialises writers that must check-then-create (add-unit). It is
// released by calling the returned function.
func (db *DB) lockDB() (func(), error) {
	f, err := os.Open(db.root)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", db.root, err)
	}
	return func() { f.Close() }, nil
}

// AddMany writes new units to units/, all or nothing as far as existence
// goes: if any id is already in the database, nothing is written. It returns
// the paths written.
func (db *DB) AddMany(units []*unit.Unit) ([]string, error) {
	unlock, err := db.lockDB()
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := db.index()
	if err != nil {
		return nil, err
	}
	for _, u := range units {
		if found := idx[u.ID()]; len(found) > 0 {
			return nil, fmt.Errorf("%w: unit %s is already in %s (%s)", ErrExists, u.ID(), found[0].Dir, found[0].Path)
		}
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
	if err := renameSync(f.Name(), dst); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return dst, nil
}

// Retry moves unit id from fail/ back to units/, clearing its failure and
// retry fields and keeping everything else.
func (db *DB) Retry(id string) (string, error) {
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
