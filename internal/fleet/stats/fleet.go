package stats

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
)

// Fleet is --stats for a running fleet: the counts, the units in flight
// with the step they are in and for how long, the rate over the last hour
// and the time left at that rate, and the rollout's wave and pause.
type Fleet struct {
	At       time.Time      `json:"at"`
	States   map[string]int `json:"states"`
	Total    int            `json:"total"`
	Failures map[string]int `json:"fail_classes"`
	Results  map[string]int `json:"results,omitempty"`
	InFlight []Flight       `json:"in_flight"`
	// EndedLastHour counts the units that reached done/ or fail/ in the
	// hour before At; Left is what that rate says about the rest.
	EndedLastHour int            `json:"ended_last_hour"`
	LeftSeconds   int64          `json:"left_s,omitempty"`
	Rollout       *RolloutState  `json:"rollout,omitempty"`
	Paused        *rollout.Pause `json:"paused,omitempty"`
}

// Flight is a unit between its claim and its end.
type Flight struct {
	ID string `json:"id"`
	// State is its directory: tmp (claimed now) or process (migrated,
	// waiting to be online).
	State  string    `json:"state"`
	Step   string    `json:"step"`
	Since  time.Time `json:"since"`
	ForSec int64     `json:"for_s"`
}

// RolloutState is db/ROLLOUT with what it means now.
type RolloutState struct {
	Waves     string `json:"waves"`
	Wave      int    `json:"wave"`
	Of        int    `json:"of"`
	Limit     int    `json:"limit"`
	Submitted int    `json:"submitted"`
}

// Summarize builds the running fleet's summary from the rows and the
// rollout's files.
func Summarize(db *spool.DB, rows []Row, now time.Time) (Fleet, error) {
	f := Fleet{At: now, States: map[string]int{}, Failures: map[string]int{}, Results: map[string]int{}, Total: len(rows)}
	for _, d := range spool.StateDirs {
		f.States[string(d)] = 0
	}
	for _, r := range rows {
		f.States[r.State]++
		switch r.State {
		case string(spool.Fail):
			c := r.FailClass
			if c == "" {
				c = "(none)"
			}
			f.Failures[c]++
		case string(spool.Tmp), string(spool.Process):
			f.InFlight = append(f.InFlight, flight(r, now))
		}
		if (r.State == string(spool.Done) || r.State == string(spool.Fail)) && !r.changed.IsZero() && now.Sub(r.changed) <= time.Hour {
			f.EndedLastHour++
		}
		if r.Preflight != "" {
			f.Results["preflight "+r.Preflight]++
		}
		if r.Rehearsal != "" {
			f.Results["rehearsal "+r.Rehearsal]++
		}
	}
	sort.Slice(f.InFlight, func(i, j int) bool {
		if f.InFlight[i].ForSec != f.InFlight[j].ForSec {
			return f.InFlight[i].ForSec > f.InFlight[j].ForSec
		}
		return f.InFlight[i].ID < f.InFlight[j].ID
	})
	if left := f.States[string(spool.Units)] + f.States[string(spool.Tmp)] + f.States[string(spool.Process)]; f.EndedLastHour > 0 && left > 0 {
		f.LeftSeconds = int64(float64(left) / float64(f.EndedLastHour) * 3600)
	}
	st, err := rollout.ReadState(db)
	if err != nil {
		return f, err
	}
	if st.Waves != "" {
		plan, err := rollout.ParseWaves(st.Waves)
		if err != nil {
			return f, fmt.Errorf("db/ROLLOUT: %w", err)
		}
		o, err := db.ReadOrder(nil)
		if err != nil {
			return f, err
		}
		f.Rollout = &RolloutState{Waves: st.Waves, Wave: st.Wave, Of: plan.Waves(), Limit: plan.Limit(st.Wave, o.Len()), Submitted: o.Len()}
	}
	if f.Paused, err = rollout.ReadPause(db); err != nil {
		return f, err
	}
	return f, nil
}

// flight is where a unit in tmp/ or process/ is.
func flight(r Row, now time.Time) Flight {
	fl := Flight{ID: r.ID, State: r.State, Step: r.step, Since: r.stepAt}
	switch {
	case r.State == string(spool.Process):
		fl.Step, fl.Since = "waiting online", r.changed
	case r.checking:
		fl.Step, fl.Since = "online check", r.changed
	case fl.Step == "":
		fl.Step, fl.Since = "claimed", r.changed
	}
	if !fl.Since.IsZero() {
		fl.ForSec = int64(now.Sub(fl.Since) / time.Second)
	}
	return fl
}

// maxFlightRows bounds the units in flight the table lists (--json has
// them all).
const maxFlightRows = 20

// WriteFleet prints the rollout, a pause, the units in flight and the
// rate; it goes after WriteSummary.
func WriteFleet(w io.Writer, f Fleet) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if p := f.Paused; p != nil {
		fmt.Fprintf(tw, "\nPAUSED since %s by %s: %s\n", p.At.UTC().Format(time.RFC3339), p.By, p.Reason)
		fmt.Fprintf(tw, "failed units: %s\n", strings.Join(p.Units, ", "))
		fmt.Fprintln(tw, "No worker starts a unit until migdb-migrate --resume; units in flight finish.")
	}
	if r := f.Rollout; r != nil {
		fmt.Fprintf(tw, "\nROLLOUT\twave %d of %d (waves %s): the first %d of %d units submitted may start\n", r.Wave, r.Of, r.Waves, r.Limit, r.Submitted)
	}
	if len(f.InFlight) > 0 {
		fmt.Fprintf(tw, "\nIN FLIGHT\tSTATE\tSTEP\tFOR\n")
		for i, fl := range f.InFlight {
			if i == maxFlightRows {
				fmt.Fprintf(tw, "and %d more\t\t\t\n", len(f.InFlight)-i)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fl.ID, fl.State, fl.Step, (time.Duration(fl.ForSec) * time.Second).String())
		}
	}
	fmt.Fprintf(tw, "\nended in the last hour\t%d\n", f.EndedLastHour)
	if f.LeftSeconds > 0 {
		fmt.Fprintf(tw, "left at that rate\t%s\n", (time.Duration(f.LeftSeconds) * time.Second).String())
	}
	return tw.Flush()
}

// WriteJSON prints the summary as one JSON document (--stats --json).
func WriteJSON(w io.Writer, f Fleet) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(f)
}
