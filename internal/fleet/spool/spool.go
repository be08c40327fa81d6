// Package spool owns the migdb database directory: the only thing the
// migdb processes share.
//
// A unit is a file; its directory is its state. Every change is a rename(2)
// inside one filesystem, so at every instant a unit is in exactly one of
// units/, tmp/, process/, done/ or fail/. A worker owns a unit while the file
// sits in tmp/ under a claim name and the worker holds a lock on it; the
// lock dies with the process, which is how other workers detect a dead
// owner and hand its unit back.
//
// Across hosts sharing the directory over NFSv4: rename is atomic there,
// and the locks (lock.go) are byte-range locks the server keeps for each
// client while its lease lives, so a dead host's claims become free only
// after the server has expired its lease.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// Dir names one directory of the database.
type Dir string

// The database directories.
const (
	Units   Dir = "units"
	Tmp     Dir = "tmp"
	Process Dir = "process"
	Done    Dir = "done"
	Fail    Dir = "fail"
	Log     Dir = "log"
	// IDs indexes every unit id ever added (add.go); hidden, so
	// `ls db/*/ | grep ID` still lists only the unit.
	IDs Dir = ".ids"
)

// StateDirs are the directories a unit can be in, in the order a unit
// usually travels.
var StateDirs = []Dir{Units, Tmp, Process, Done, Fail}

// StopFile is the name, inside tmp/, that tells workers to stop.
const StopFile = "migdb-stop"

const (
	claimSep     = "~"       // tmp/<from>~<name>
	writePrefix  = ".write-" // temporary files being written
	workerPrefix = ".worker-"
)

// Errors a caller decides on.
var (
	// ErrTaken means another worker won the race for a unit.
	ErrTaken = errors.New("unit taken by another worker")
	// ErrBusy means the unit file is locked for a moment: another process
	// is claiming it or has just moved it here. Try again shortly.
	ErrBusy = errors.New("unit file busy")
	// ErrExists means a unit with that id is already in the database.
	ErrExists = errors.New("unit already exists")
	// ErrNotFound means no unit with that id is where it was looked for.
	ErrNotFound = errors.New("unit not found")
)

// DB is an opened database directory (<base>/db).
type DB struct {
	root string
	// dirSync replaces the directory fsync in fault-injection tests.
	dirSync func(dir string) error
}

// Open creates <base>/db and its subdirectories (mode 0700: unit files can
// hold passwords) as needed.
func Open(base string) (*DB, error) {
	if base == "" {
		base = "."
	}
	root := filepath.Join(base, "db")
	for _, d := range append([]Dir{""}, Units, Tmp, Process, Done, Fail, Log) {
		p := filepath.Join(root, string(d))
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("database %s: %w", root, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", root, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("database %s: %s is not a directory", root, p)
		}
	}
	return &DB{root: root}, nil
}

// Root is the db directory.
func (db *DB) Root() string { return db.root }

// Path is the path of a database directory, or of a file in it.
func (db *DB) Path(d Dir, name ...string) string {
	return filepath.Join(append([]string{db.root, string(d)}, name...)...)
}

// FileName is the file name of a unit with the given id and random tag in
// directory d: fail/ uses "fail-", log/ uses "log-", the rest "unit-".
func FileName(d Dir, id, tag string) string {
	switch d {
	case Fail:
		return "fail-" + id + "-" + tag
	case Log:
		return "log-" + id + "-" + tag
	}
	return "unit-" + id + "-" + tag
}

// ParseName splits a unit file name (any prefix) into id and tag. The tag is
// the part after the last '-', which mktemp-style tags never contain.
func ParseName(name string) (id, tag string, ok bool) {
	for _, p := range []string{"unit-", "fail-", "log-"} {
		if rest, found := strings.CutPrefix(name, p); found {
			i := strings.LastIndexByte(rest, '-')
			if i <= 0 || i == len(rest)-1 {
				return "", "", false
			}
			id, tag = rest[:i], rest[i+1:]
			return id, tag, unit.CheckID(id) == nil
		}
	}
	return "", "", false
}

// claimName is the name a unit from dir from gets in tmp/ while claimed.
func claimName(from Dir, name string) string { return string(from) + claimSep + name }

// parseClaimName undoes claimName.
func parseClaimName(n string) (from Dir, name string, ok bool) {
	f, rest, found := strings.Cut(n, claimSep)
	if !found {
		return "", "", false
	}
	switch Dir(f) {
	case Units, Process, Fail:
		_, _, ok := ParseName(rest)
		return Dir(f), rest, ok
	}
	return "", "", false
}

// UnitName returns the unit file name behind a name in tmp/ (a claim),
// or the name itself elsewhere; ok is false for files that are not units.
func UnitName(d Dir, name string) (string, bool) {
	if d == Tmp {
		_, n, ok := parseClaimName(name)
		return n, ok
	}
	_, _, ok := ParseName(name)
	return name, ok
}

// StopRequested reports whether the stop file exists.
func (db *DB) StopRequested() bool {
	_, err := os.Stat(db.Path(Tmp, StopFile))
	return err == nil
}

// RequestStop creates the stop file.
func (db *DB) RequestStop() error {
	return fsutil.WriteFileAtomic(db.Path(Tmp, StopFile), "", []byte("stop\n"), 0o600)
}

// ClearStop removes the stop file.
func (db *DB) ClearStop() error {
	err := os.Remove(db.Path(Tmp, StopFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
