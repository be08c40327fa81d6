package rollout

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// ended knows which units have ended: the ids in done/, and the failures
// in fail/ with their class and time. A full listing (names only; a
// failure's file is read once) sets it; between listings the file events
// of done/ and fail/ name what to look at again. Other NFS hosts' moves
// are seen at the next listing, and a move missed is only ever a unit
// not yet seen ended, which holds a wave back, never opens one early.
type ended struct {
	db    *spool.DB
	done  map[string]bool     // ids
	fail  map[string]*failure // by file name
	dirty map[string]bool     // paths named by events since
	// changed counts the changes, so a judge can tell nothing changed.
	changed int
}

// failure is a unit in fail/.
type failure struct {
	id    string
	class devproto.Class
	at    time.Time // FAIL_TS, else the file's time
}

func newEnded(db *spool.DB) *ended {
	return &ended{db: db, done: map[string]bool{}, fail: map[string]*failure{}, dirty: map[string]bool{}}
}

// event notes a file event in done/ or fail/.
func (e *ended) event(path string) { e.dirty[path] = true }

// list lists done/ and fail/ afresh.
func (e *ended) list() error {
	if err := e.listFail(); err != nil {
		return err
	}
	names, err := spool.ReadNames(e.db.Path(spool.Done))
	if err != nil {
		return err
	}
	done := make(map[string]bool, len(names))
	for _, n := range names {
		if id, _, ok := spool.ParseName(n); ok {
			done[id] = true
		}
	}
	if len(done) != len(e.done) {
		e.changed++
	} else {
		for id := range done {
			if !e.done[id] {
				e.changed++
				break
			}
		}
	}
	e.done = done
	clear(e.dirty)
	return nil
}

// listFail lists fail/ afresh (the small directory: before a wave opens).
func (e *ended) listFail() error {
	names, err := spool.ReadNames(e.db.Path(spool.Fail))
	if err != nil {
		return err
	}
	fail := make(map[string]*failure, len(names))
	for _, n := range names {
		if f, ok := e.fail[n]; ok {
			fail[n] = f
			continue
		}
		if f := e.readFailure(n); f != nil {
			fail[n] = f
		}
	}
	if len(fail) != len(e.fail) {
		e.changed++
	} else {
		for n := range fail {
			if e.fail[n] == nil {
				e.changed++
				break
			}
		}
	}
	e.fail = fail
	return nil
}

// apply looks at the files events named.
func (e *ended) apply() {
	for p := range e.dirty {
		dir, name := filepath.Dir(p), filepath.Base(p)
		id, _, ok := spool.ParseName(name)
		if !ok {
			continue
		}
		_, err := os.Lstat(p)
		there := err == nil
		switch dir {
		case e.db.Path(spool.Done):
			if e.done[id] != there {
				e.done[id] = there
				if !there {
					delete(e.done, id)
				}
				e.changed++
			}
		case e.db.Path(spool.Fail):
			_, known := e.fail[name]
			switch {
			case there && !known:
				if f := e.readFailure(name); f != nil {
					e.fail[name] = f
					e.changed++
				}
			case !there && known:
				delete(e.fail, name)
				e.changed++
			}
		}
	}
	clear(e.dirty)
}

func (e *ended) readFailure(name string) *failure {
	id, _, ok := spool.ParseName(name)
	if !ok {
		return nil
	}
	p := e.db.Path(spool.Fail, name)
	f := &failure{id: id, class: devproto.ClassOther}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		if u, err := unit.Parse(data); err == nil {
			if c := u.Get(unit.FieldFailClass); c != "" {
				f.class = devproto.Class(c)
			}
			f.at, _, _ = u.FailTime()
		}
	}
	if f.at.IsZero() {
		if st, err := os.Stat(p); err == nil {
			f.at = st.ModTime()
		}
	}
	return f
}

// failedIDs is the set of ids in fail/.
func (e *ended) failedIDs() map[string]bool {
	m := make(map[string]bool, len(e.fail))
	for _, f := range e.fail {
		m[f.id] = true
	}
	return m
}
