package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The claim lock must be a byte-range write lock (what the Linux NFS client
// sends to the server), not an flock: a POSIX lock query from another
// process sees it. An flock is invisible to F_GETLK, so this fails for the
// flock-based locks this package used before.
func TestClaimLockIsAByteRangeWriteLock(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 1)
	names, _ := readNames(db.Path(Units))
	c, err := db.Claim(Units, names[0], time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	// Another open file of this process asks: OFD locks conflict between
	// open files, and F_OFD_GETLK reports the holder's lock type.
	f, err := os.OpenFile(c.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if lk.Type != unix.F_WRLCK {
		t.Fatalf("claimed file holds no byte-range write lock (type %d)", lk.Type)
	}
	if _, err := lockFile(c.Path()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock on a live claim: %v, want ErrBusy", err)
	}
}

// The NFS client refuses a write lock on a descriptor opened read-only, so
// every lock is taken on one opened for reading and writing.
func TestLockUsesAWritableDescriptor(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 1)
	names, _ := readNames(db.Path(Units))
	f, err := lockFile(db.Path(Units, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDWR {
		t.Fatalf("lock taken on a descriptor opened with flags %#x, want O_RDWR", fl)
	}
}

// A locked file that was replaced by a rename (its link count is zero) is
// never taken for the file now at its name.
func TestSameFileRefusesAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	os.WriteFile(p, []byte("old"), 0o600)
	f, err := lockFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !sameFile(f, p) {
		t.Fatal("sameFile false for the file itself")
	}
	os.WriteFile(p+".new", []byte("new"), 0o600)
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if sameFile(f, p) {
		t.Fatal("sameFile true for a file replaced by rename")
	}
}

func TestWriterName(t *testing.T) {
	for name, want := range map[string]string{
		".write-12@host-a.lan-123": "12 host-a.lan",
		".write-12@h-9":            "12 h",
		".write-x@h-9":             "",
		".write-12-9":              "",
		".write-0@h-9":             "",
		"unit-a-b":                 "",
	} {
		pid, host, ok := writerOf(name)
		got := ""
		if ok {
			got = strconv.Itoa(pid) + " " + host
		}
		if got != want {
			t.Errorf("writerOf(%q) = %q, want %q", name, got, want)
		}
	}
	pat := writerPattern()
	pid, host, ok := writerOf(strings.Replace(pat, "*", "42", 1))
	me, _ := os.Hostname()
	if !ok || pid != os.Getpid() || host != me {
		t.Errorf("writerPattern %q does not parse back: %d %q %v", pat, pid, host, ok)
	}
}
