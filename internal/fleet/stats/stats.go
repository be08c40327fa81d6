// Package stats summarises a database: one row per unit in any state, and
// counts by state and by failure class.
package stats

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// Row is one unit.
type Row struct {
	ID, State, FailClass, ConnAttempts, Created, LastChange, DeviceID, FailMsg string
	DurationS                                                                  string
	DeviceType                                                                 string
	Preflight, Rehearsal                                                       string // ok, failed or ""
	OnlineBy                                                                   string // vpn, heartbeat or ""
	// For a running fleet (fleet.go): when it last changed state; for a
	// claimed unit, its pipeline step and since when.
	changed  time.Time
	step     string
	stepAt   time.Time
	checking bool // claimed from process/ by migdb-check-done
}

// header is the CSV header.
func header() []string {
	return []string{"id", "state", "fail_class", "conn_attempts", "created", "last_change", "duration_s", "device_id", "fail_msg",
		"device_type", "preflight", "rehearsal", "online_by"}
}

// Collect reads every unit file in the state directories. Files are read
// by several goroutines: on NFS each open is a round trip to the server,
// and on a local disk parsing is what costs.
func Collect(db *spool.DB) ([]Row, error) { return collect(db, readers) }

// readers is how many files Collect reads at once.
const readers = 8

type job struct {
	i                     int
	path, id, state, name string
}

func collect(db *spool.DB, n int) ([]Row, error) {
	var jobs []job
	for _, d := range spool.StateDirs {
		entries, err := os.ReadDir(db.Path(d))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name, ok := spool.UnitName(d, e.Name())
			if !ok {
				continue
			}
			id, _, _ := spool.ParseName(name)
			jobs = append(jobs, job{i: len(jobs), path: db.Path(d, e.Name()), id: id, state: string(d), name: e.Name()})
		}
	}
	rows := make([]Row, len(jobs))
	ch := make(chan job)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				rows[j.i] = row(j.path, j.id, j.state)
				rows[j.i].checking = strings.HasPrefix(j.name, string(spool.Process)+"~")
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	return rows, nil
}

func row(path, id, state string) Row {
	r := Row{ID: id, State: state}
	data, err := os.ReadFile(path)
	if err != nil {
		r.FailMsg = "unreadable: " + err.Error()
		return r
	}
	u, err := unit.Parse(data)
	if err != nil {
		r.FailMsg = "unreadable: " + err.Error()
		return r
	}
	r.FailClass = u.Get(unit.FieldFailClass)
	r.ConnAttempts = u.Get(unit.FieldConnRetries)
	r.DeviceID = u.Get(unit.FieldDeviceID)
	r.FailMsg = u.Get(unit.FieldFailMsg)
	r.DeviceType = u.Get(unit.FieldDeviceType)
	r.Preflight = u.Get(unit.FieldPreflight)
	r.Rehearsal = u.Get(unit.FieldRehearsal)
	r.OnlineBy = u.Get(unit.FieldOnlineBy)
	created, ok, _ := u.CreateTime()
	if ok {
		r.Created = unit.ISO(created)
	}
	last, lok, _ := u.StatusTime()
	if f, fok, _ := u.FailTime(); fok && (!lok || f.After(last)) {
		last, lok = f, true
	}
	r.step = u.Get(unit.FieldStep)
	if ts, err := strconv.ParseInt(u.Get(unit.FieldStepTS), 10, 64); err == nil {
		r.stepAt = time.Unix(ts, 0)
	}
	if lok {
		r.changed = last
		r.LastChange = unit.ISO(last)
		if ok {
			r.DurationS = strconv.FormatInt(int64(last.Sub(created)/time.Second), 10)
		}
	}
	return r
}

// WriteCSV writes the rows with a header.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write(header())
	for _, r := range rows {
		cw.Write([]string{r.ID, r.State, r.FailClass, r.ConnAttempts, r.Created, r.LastChange, r.DurationS, r.DeviceID, r.FailMsg,
			r.DeviceType, r.Preflight, r.Rehearsal, r.OnlineBy})
	}
	cw.Flush()
	return cw.Error()
}

// WriteSummary prints counts by state, by failure class, how done
// devices came online (by VPN, or by heartbeat only: VPN not up), and the
// pre-flight and rehearsal results.
func WriteSummary(w io.Writer, rows []Row) error {
	byState := map[string]int{}
	byClass := map[string]int{}
	results := map[string]int{}
	onlineBy := map[string]int{}
	for _, r := range rows {
		byState[r.State]++
		if r.State == string(spool.Done) && r.OnlineBy != "" {
			onlineBy[r.OnlineBy]++
		}
		if r.Preflight != "" {
			results["preflight "+r.Preflight]++
		}
		if r.Rehearsal != "" {
			results["rehearsal "+r.Rehearsal]++
		}
		if r.State == string(spool.Fail) {
			c := r.FailClass
			if c == "" {
				c = "(none)"
			}
			byClass[c]++
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tUNITS")
	for _, d := range spool.StateDirs {
		fmt.Fprintf(tw, "%s\t%d\n", d, byState[string(d)])
	}
	fmt.Fprintf(tw, "total\t%d\n", len(rows))
	writeCounts(tw, "FAIL_CLASS", byClass)
	writeCounts(tw, "ONLINE_BY", onlineBy)
	writeCounts(tw, "RESULT", results)
	return tw.Flush()
}

// writeCounts prints a titled table of counts, sorted by key; nothing
// when there are none.
func writeCounts(w io.Writer, title string, counts map[string]int) {
	if len(counts) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\tUNITS\n", title)
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%d\n", k, counts[k])
	}
}
