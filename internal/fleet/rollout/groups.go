package rollout

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"golang.org/x/sys/unix"
)

// A group's claims (--max-per-group): db/groups/<group> is a spool record
// with one line per unit of the group that was let through and has not
// ended, "<id> <tag> <epoch seconds> <host pid>". A worker adds its line
// and claims the unit under the record's lock, so workers of every host
// count the same lines and never let more through than the limit.
//
// A line goes when its unit ends or comes back: the worker that puts a
// unit back in units/ or fails it takes its line out; units that reach
// done/ (another program moves them) are found ended when the group is
// full and its lines are looked at. A line left by a crash is taken out
// the same way: its unit is in done/ or fail/, or back in units/. A unit
// seen back in units/ counts as ended at once when the line's writer was a
// process of this host that is gone, else only once its line is older
// than staleAfter, longer than an NFS client may show a directory entry
// that has moved; a unit in no directory at all only after the whole
// database was listed without it twice.
const groupsDir = "groups"

// staleAfter is how old a line must be before its unit, seen in units/ or
// nowhere, no longer counts.
const staleAfter = 5 * time.Minute

// slot is one line of a group record.
type slot struct {
	id, tag string
	at      time.Time
	by      string
}

func groupPath(db *spool.DB, group string) string {
	return filepath.Join(db.Root(), groupsDir, group)
}

func parseSlots(data []byte) []slot {
	var out []slot
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		f := strings.SplitN(string(line), " ", 4)
		if len(f) < 3 {
			continue
		}
		ts, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		s := slot{id: f[0], tag: f[1], at: time.Unix(ts, 0)}
		if len(f) == 4 {
			s.by = f[3]
		}
		out = append(out, s)
	}
	return out
}

func marshalSlots(slots []slot) []byte {
	var b bytes.Buffer
	for _, s := range slots {
		fmt.Fprintf(&b, "%s %s %d %s\n", s.id, s.tag, s.at.Unix(), s.by)
	}
	return b.Bytes()
}

// distinct counts the units the lines stand for.
func distinct(slots []slot) int {
	seen := map[string]bool{}
	for _, s := range slots {
		seen[s.id] = true
	}
	return len(seen)
}

// without drops the lines of unit id.
func without(slots []slot, id string) []slot {
	out := slots[:0:0]
	for _, s := range slots {
		if s.id != id {
			out = append(out, s)
		}
	}
	return out
}

// deadHere reports whether a line was written by a process of this host
// that is gone (a kill -9 between writing its line and claiming, or before
// giving the line back): its unit, seen in units/, is not in flight. A pid
// used again by another process only keeps the line longer.
func deadHere(by string) bool {
	host, pid, ok := strings.Cut(by, " pid ")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(pid)
	me, _ := os.Hostname()
	return err == nil && n > 0 && host == me && unix.Kill(n, 0) == unix.ESRCH
}

// live keeps the lines whose units are still between their claim and
// their end; gone are ids seen in no directory at the last whole listing.
func (g *Gate) live(slots []slot, now time.Time) []slot {
	newest := map[string]slot{}
	for _, s := range slots {
		if old, ok := newest[s.id]; !ok || s.at.After(old.at) {
			newest[s.id] = s
		}
	}
	var out []slot
	for _, s := range slots {
		if newest[s.id] != s {
			continue // an older line of a unit claimed again
		}
		old := now.Sub(s.at) > staleAfter
		switch g.DB.Locate(s.id, s.tag) {
		case spool.Done, spool.Fail:
			continue
		case spool.Units:
			if old || deadHere(s.by) {
				continue
			}
		case "":
			if old && g.gone.check(s.id) {
				continue
			}
		}
		out = append(out, s)
	}
	return out
}
