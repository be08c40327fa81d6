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
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
	"github.com/fleetmig/balena-migrate/internal/usage"
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

// Errors about where the database is. Both are the operator's to fix
// (usage errors): nothing was created.
var (
	// ErrNoDatabase means <base> holds no db/ and the caller must not make one.
	ErrNoDatabase = errors.New("no database")
	// ErrDatabaseAsBase means <base> is itself a db/ directory.
	ErrDatabaseAsBase = errors.New("the directory given is itself a database")
)

// Open opens the database <base>/db, creating it and its subdirectories
// (mode 0700: unit files can hold passwords) as needed.
func Open(base string) (*DB, error) {
	db, _, err := Create(base)
	return db, err
}

// Create opens the database <base>/db, making it first when there is none;
// created says whether it did.
func Create(base string) (db *DB, created bool, err error) {
	root, err := rootOf(base)
	if err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	db, err = open(root)
	return db, created && err == nil, err
}

// OpenExisting opens the database <base>/db only when it exists (missing
// subdirectories are made): a worker or a report given the wrong --base
// must say so, not start on a new, empty database.
func OpenExisting(base string) (*DB, error) {
	root, err := rootOf(base)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usage.Errorf("%w in %s: %s does not exist (give --base / MIG_DB_DIR the directory that holds db/; migdb-add-unit makes a new database on first use)", ErrNoDatabase, baseOf(base), root)
	case err != nil:
		return nil, fmt.Errorf("database %s: %w", root, err)
	case !st.IsDir():
		return nil, usage.Errorf("database %s is not a directory", root)
	}
	return open(root)
}

// rootOf is <base>/db. A base that looks like a database itself (it holds
// units/ or process/ but no db/) is refused: the operator gave the db/
// directory instead of its parent.
func rootOf(base string) (string, error) {
	base = baseOf(base)
	root := filepath.Join(base, "db")
	if _, err := os.Stat(root); err == nil {
		return root, nil
	}
	for _, d := range []Dir{Units, Process} {
		if st, err := os.Stat(filepath.Join(base, string(d))); err == nil && st.IsDir() {
			abs, _ := filepath.Abs(base)
			return "", usage.Errorf("%w: %s holds %s/ itself, so it is a db/ directory: give --base / MIG_DB_DIR its parent, %s",
				ErrDatabaseAsBase, base, d, filepath.Dir(abs))
		}
	}
	return root, nil
}

func baseOf(base string) string {
	if base == "" {
		return "."
	}
	return base
}

// open makes any missing directory of the database at root.
func open(root string) (*DB, error) {
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
