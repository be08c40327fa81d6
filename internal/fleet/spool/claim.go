package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// ErrNotDue means the unit's due time has not come; it was left where it was.
var ErrNotDue = errors.New("unit not due yet")

// Claim is a unit owned by this process. The unit file sits in tmp/ and the
// claim holds a lock on it until Finish, Release or the process dies.
type Claim struct {
	db   *DB
	from Dir
	name string
	f    *os.File
	done bool
	// Unit is the parsed file; nil when it could not be parsed (ParseErr).
	Unit *unit.Unit
	// ParseErr is why the file could not be read as a unit.
	ParseErr error
}

// From is the directory the unit was claimed from.
func (c *Claim) From() Dir { return c.from }

// Name is the unit's file name in the directory it came from.
func (c *Claim) Name() string { return c.name }

// Tag is the random part of the unit's file names.
func (c *Claim) Tag() string {
	_, tag, _ := ParseName(c.name)
	return tag
}

// ID is the unit id taken from the file name.
func (c *Claim) ID() string {
	id, _, _ := ParseName(c.name)
	return id
}

// Path is where the claimed file is now.
func (c *Claim) Path() string { return c.db.Path(Tmp, claimName(c.from, c.name)) }

// Claim takes the unit file name in directory from. It locks the file first
// and renames it into tmp/ second, so of two racing workers exactly one gets
// it; the other gets ErrTaken (or ErrBusy while the winner holds the
// lock but has not renamed yet). When due is not the zero time and the unit's
// due time (dueOf, DUE_TS when nil) lies after it, the unit is left in place
// and ErrNotDue returned.
func (db *DB) Claim(from Dir, name string, due time.Time, dueOf func(*unit.Unit) time.Time) (*Claim, error) {
	src := db.Path(from, name)
	f, err := lockFile(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrTaken
	}
	if err != nil {
		return nil, err
	}
	if !sameFile(f, src) {
		f.Close()
		return nil, ErrTaken
	}
	c := &Claim{db: db, from: from, name: name, f: f}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", src, err)
	}
	c.Unit, c.ParseErr = unit.Parse(data)
	if c.ParseErr == nil && c.Unit.ID() != c.ID() {
		c.ParseErr = fmt.Errorf("file name says unit %q but UNIT_ID is %q", c.ID(), c.Unit.ID())
		c.Unit = nil
	}
	if c.Unit != nil && !due.IsZero() && dueTime(c.Unit, dueOf).After(due) {
		f.Close()
		return nil, ErrNotDue
	}
	if err := db.renameSync(src, c.Path()); err != nil {
		if errors.Is(err, ErrNotSynced) {
			if back := db.renameSync(c.Path(), src); back != nil && !errors.Is(back, ErrNotSynced) {
				// Ours, in tmp/, and locked: a claim, however durable.
				return c, nil
			}
		}
		// Back where it was (or never moved): only now unlock it.
		f.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrTaken
		}
		return nil, fmt.Errorf("claim %s: %w", src, err)
	}
	return c, nil
}

// dueTime is when u may be claimed.
func dueTime(u *unit.Unit, dueOf func(*unit.Unit) time.Time) time.Time {
	if dueOf != nil {
		return dueOf(u)
	}
	t, _, _ := u.Due()
	return t
}

// Update rewrites the claimed file with u, keeping the claim. The new file is
// locked before it replaces the old one, so the claim is never unguarded.
func (c *Claim) Update(u *unit.Unit) error {
	if c.done {
		return fmt.Errorf("unit %s: claim already ended", c.ID())
	}
	data, err := u.Marshal()
	if err != nil {
		return fmt.Errorf("unit %s: %w", c.ID(), err)
	}
	nf, err := writeLocked(c.db.Path(Tmp), data, filePerm(u.HasSecret()))
	if err != nil {
		return fmt.Errorf("unit %s: %w", c.ID(), err)
	}
	err = c.db.renameSync(nf.Name(), c.Path())
	if err != nil && !errors.Is(err, ErrNotSynced) {
		nf.Close()
		os.Remove(nf.Name())
		return fmt.Errorf("unit %s: %w", c.ID(), err)
	}
	// The new file is the claim now (even when its directory could not be
	// synced): keep its lock, drop the old one.
	c.f.Close()
	c.f = nf
	c.Unit = u
	if err != nil {
		return fmt.Errorf("unit %s: %w", c.ID(), err)
	}
	return nil
}

// Finish writes u and moves the unit to directory to, ending the claim.
// The unit is rewritten inside tmp/ first, then moved by one rename, so it
// is never in two directories at once.
func (c *Claim) Finish(to Dir, u *unit.Unit) (string, error) {
	// A rewrite that is in place but not yet synced is synced by the move,
	// which fsyncs tmp/ again.
	if err := c.Update(u); err != nil && !errors.Is(err, ErrNotSynced) {
		return "", err
	}
	return c.move(to)
}

// FinishRaw moves the file unchanged to directory to (for files that cannot
// be parsed and so cannot be rewritten).
func (c *Claim) FinishRaw(to Dir) (string, error) { return c.move(to) }

// Release hands the unit back, as it is now, to the directory it came from.
func (c *Claim) Release() error {
	_, err := c.move(c.from)
	return err
}

// Ended reports whether the claim was finished or released.
func (c *Claim) Ended() bool { return c.done }

func (c *Claim) move(to Dir) (string, error) {
	if c.done {
		return "", fmt.Errorf("unit %s: claim already ended", c.ID())
	}
	id, tag, _ := ParseName(c.name)
	dst := c.db.Path(to, FileName(to, id, tag))
	err := c.db.renameSync(c.Path(), dst)
	if err != nil && !errors.Is(err, ErrNotSynced) {
		return "", fmt.Errorf("move unit %s to %s: %w", id, to, err)
	}
	// Moved: the claim is over even if the move may not survive a crash
	// (then the unit is found unlocked in tmp/ and handed back).
	c.done = true
	c.f.Close()
	if err != nil {
		return dst, fmt.Errorf("move unit %s to %s: %w", id, to, err)
	}
	return dst, nil
}
