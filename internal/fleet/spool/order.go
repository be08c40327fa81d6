package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// The submission order: .ids/.order names every unit id once, one a line,
// in the order the units were submitted. migdb-add-unit appends to it
// under the id lock before it writes the units, so a rollout can cut its
// waves from one small file instead of reading every unit. A crash may
// leave an id whose unit was never written (a reader must not wait for
// it: see the rollout's census) or a last line cut short (dropped before
// the next append, and ignored by readers).
const idsOrder = ".order"

// OrderPath is the submission order's file.
func (db *DB) OrderPath() string { return db.Path(IDs, idsOrder) }

// Order is the submission order as read from .ids/.order.
type Order struct {
	ids  []string
	rank map[string]int
	size int64 // bytes read, up to the last complete line
}

// Len is the number of units submitted.
func (o *Order) Len() int {
	if o == nil {
		return 0
	}
	return len(o.ids)
}

// Rank is id's place in the order, from 0; ok is false for an id that is
// not in it.
func (o *Order) Rank(id string) (int, bool) {
	if o == nil {
		return 0, false
	}
	r, ok := o.rank[id]
	return r, ok
}

// ID is the id at rank r.
func (o *Order) ID(r int) string { return o.ids[r] }

// ReadOrder reads the submission order. Given the order read before, it
// reads only the lines appended since. A database without the file has
// an empty order (EnsureOrdered makes it).
func (db *DB) ReadOrder(prev *Order) (*Order, error) {
	o := &Order{rank: map[string]int{}}
	if prev != nil {
		o = prev
	}
	f, err := os.Open(db.Path(IDs, idsOrder))
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < o.size {
		// Rewritten (built again by hand): read it whole.
		o = &Order{rank: map[string]int{}}
	}
	if st.Size() == o.size {
		return o, nil
	}
	data, err := io.ReadAll(io.NewSectionReader(f, o.size, st.Size()-o.size))
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return o, nil
	}
	for _, line := range bytes.Split(data[:end], []byte{'\n'}) {
		id := string(line)
		if _, dup := o.rank[id]; dup || unit.CheckID(id) != nil {
			continue
		}
		o.rank[id] = len(o.ids)
		o.ids = append(o.ids, id)
	}
	o.size += int64(end + 1)
	return o, nil
}

// EnsureOrdered appends the ids that are not in the submission order yet,
// in the order given (units found in the database without an entry: a
// unit written by hand or by an older version). It takes the id lock.
func (db *DB) EnsureOrdered(ids []string) error {
	unlock, err := db.lockIDs()
	if err != nil {
		return err
	}
	defer unlock()
	return db.appendOrder(ids)
}

// appendOrder appends the ids missing from .ids/.order, building the file
// first when the database has none. The caller holds lockIDs.
func (db *DB) appendOrder(ids []string) error {
	p := db.Path(IDs, idsOrder)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if err := db.buildOrder(); err != nil {
			return fmt.Errorf("submission order %s: %w", p, err)
		}
	}
	o, err := db.ReadOrder(nil)
	if err != nil {
		return err
	}
	var add bytes.Buffer
	for _, id := range ids {
		if _, ok := o.rank[id]; !ok {
			o.rank[id] = -1
			add.WriteString(id + "\n")
		}
	}
	if add.Len() == 0 {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	// A line cut short by a crash is dropped before appending.
	if err := f.Truncate(o.size); err != nil {
		return fmt.Errorf("submission order %s: %w", p, err)
	}
	if _, err := f.WriteAt(add.Bytes(), o.size); err != nil {
		return fmt.Errorf("submission order %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("submission order %s: %w", p, err)
	}
	return nil
}

// buildOrder writes .ids/.order for a database made before it existed:
// every unit, oldest CREATE_TS first (ties by id). It reads every unit
// once. The caller holds lockIDs.
func (db *DB) buildOrder() error {
	idx, err := db.index()
	if err != nil {
		return err
	}
	type sub struct {
		id string
		at time.Time
	}
	subs := make([]sub, 0, len(idx))
	for id, where := range idx {
		s := sub{id: id}
		if data, err := os.ReadFile(where[0].Path); err == nil {
			if u, err := unit.Parse(data); err == nil {
				s.at, _, _ = u.CreateTime()
			}
		}
		subs = append(subs, s)
	}
	sort.Slice(subs, func(i, j int) bool {
		if !subs[i].at.Equal(subs[j].at) {
			return subs[i].at.Before(subs[j].at)
		}
		return subs[i].id < subs[j].id
	})
	var b bytes.Buffer
	for _, s := range subs {
		b.WriteString(s.id + "\n")
	}
	return fsutil.WriteFileAtomic(db.Path(IDs, idsOrder), db.Path(Tmp), b.Bytes(), 0o600)
}
