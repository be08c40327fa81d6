package spool

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Registration marks a running worker in tmp/ for as long as its process
// lives (an flock on a file), so `migdb-migrate --stop` can wait for every
// worker of the database to exit.
type Registration struct {
	f *os.File
}

// Register records a running worker named name (e.g. "migdb-migrate").
func (db *DB) Register(name string) (*Registration, error) {
	p := db.Path(Tmp, fmt.Sprintf("%s%s-%d-%s", workerPrefix, name, os.Getpid(), newTag()))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	return &Registration{f: f}, nil
}

// Close removes the registration.
func (r *Registration) Close() error {
	os.Remove(r.f.Name())
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
		f, err := lockFile(db.Path(Tmp, name), os.O_RDONLY)
		if err == ErrBusy {
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
