package spool

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Registration marks a running worker in tmp/ for as long as its process
// lives (a lock on a file), so `migdb-migrate --stop` can wait for every
// worker of the database to exit.
type Registration struct {
	f    *os.File
	path string
}

// Register records a running worker named name (e.g. "migdb-migrate").
func (db *DB) Register(name string) (*Registration, error) {
	// Locked before it gets its name, so no worker (of any host) can take
	// it for a dead worker's.
	f, err := writeLocked(db.Path(Tmp), nil, 0o600)
	if err != nil {
		return nil, err
	}
	p := db.Path(Tmp, fmt.Sprintf("%s%s-%d-%s", workerPrefix, name, os.Getpid(), newTag()))
	if err := db.renameSync(f.Name(), p); err != nil && !errors.Is(err, ErrNotSynced) {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &Registration{f: f, path: p}, nil
}

// Close removes the registration.
func (r *Registration) Close() error {
	os.Remove(r.path)
	return r.f.Close()
}

// LiveWorkers counts registered workers whose process is alive.
func (db *DB) LiveWorkers() (int, error) {
	names, err := readNames(db.Path(Tmp))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, workerPrefix) {
			continue
		}
		f, err := lockFile(db.Path(Tmp, name))
		if errors.Is(err, ErrBusy) {
			n++
			continue
		}
		if err == nil {
			os.Remove(f.Name())
			f.Close()
		}
	}
	return n, nil
}
