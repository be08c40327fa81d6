package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// The rollout's files, directly in db/. ROLLOUT is a spool record: every
// change of it, and every creation or removal of PAUSED, is made under its
// lock, so the workers of every host see one rollout. Both are KEY=VALUE
// files, like units.
const (
	StateFile  = "ROLLOUT"
	PausedFile = "PAUSED"
)

// Fields of ROLLOUT.
const (
	fieldWaves   = "WAVES"    // the plan the rollout runs
	fieldWave    = "WAVE"     // the highest wave open (from 1)
	fieldWaveTS  = "WAVE_TS"  // when it opened
	fieldAckTS   = "ACK_TS"   // failures until then were acknowledged (--resume)
	fieldAckDone = "ACK_DONE" // units in done/ then
)

// State is what ROLLOUT holds.
type State struct {
	Waves  string    // the plan's spec, "" without waves
	Wave   int       // the highest wave open (from 1; 0 without waves)
	WaveAt time.Time // when it opened
	// Failures until AckAt were acknowledged by migdb-migrate --resume and
	// no longer count for the breaker; AckDone units were in done/ then.
	AckAt   time.Time
	AckDone int
}

// ParseState reads ROLLOUT's content (empty: the zero State).
func ParseState(data []byte) (State, error) {
	f, err := envfile.Parse(data)
	if err != nil {
		return State{}, err
	}
	s := State{Waves: f.Value(fieldWaves)}
	num := func(k string) int64 {
		n, perr := strconv.ParseInt(f.Value(k), 10, 64)
		if perr != nil && f.Value(k) != "" && err == nil {
			err = fmt.Errorf("%s=%q is not a whole number", k, f.Value(k))
		}
		return n
	}
	s.Wave = int(num(fieldWave))
	if ts := num(fieldWaveTS); ts > 0 {
		s.WaveAt = time.Unix(ts, 0)
	}
	if ts := num(fieldAckTS); ts > 0 {
		s.AckAt = time.Unix(ts, 0)
	}
	s.AckDone = int(num(fieldAckDone))
	return s, err
}

// Marshal renders ROLLOUT.
func (s State) Marshal() []byte {
	f := envfile.New()
	if s.Waves != "" {
		f.Set(fieldWaves, s.Waves)
		f.Set(fieldWave, strconv.Itoa(s.Wave))
		if !s.WaveAt.IsZero() {
			f.Set(fieldWaveTS, unit.Epoch(s.WaveAt))
		}
	}
	if !s.AckAt.IsZero() {
		f.Set(fieldAckTS, unit.Epoch(s.AckAt))
		f.Set(fieldAckDone, strconv.Itoa(s.AckDone))
	}
	data, _ := f.Marshal() // plain values: always storable
	return data
}

// ReadState reads db/ROLLOUT without its lock (a whole version: it is
// replaced by rename); no file is the zero State.
func ReadState(db *spool.DB) (State, error) {
	data, err := os.ReadFile(statePath(db))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	s, err := ParseState(data)
	if err != nil {
		return s, fmt.Errorf("%s: %w", statePath(db), err)
	}
	return s, nil
}

func statePath(db *spool.DB) string  { return db.Root() + "/" + StateFile }
func pausedPath(db *spool.DB) string { return db.Root() + "/" + PausedFile }

// lockState takes the rollout's lock (db/ROLLOUT) and reads it.
func lockState(ctx context.Context, db *spool.DB) (*spool.Record, State, error) {
	rec, err := db.LockRecord(ctx, statePath(db))
	if err != nil {
		return nil, State{}, err
	}
	s, err := ParseState(rec.Data)
	if err != nil {
		rec.Close()
		return nil, State{}, fmt.Errorf("%s: %w (fix or remove the file)", statePath(db), err)
	}
	return rec, s, nil
}

// Pause is what db/PAUSED holds: why the rollout stopped.
type Pause struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Counted since the last --resume: units ended, and failed by class.
	Ended   int                    `json:"ended"`
	Failed  int                    `json:"failed"`
	Classes map[devproto.Class]int `json:"fail_classes"`
	Units   []string               `json:"units"` // the failed units counted (at most maxPauseUnits)
	By      string                 `json:"by"`    // host and pid of the worker that paused it
}

// maxPauseUnits bounds the unit ids PAUSED lists.
const maxPauseUnits = 50

// Marshal renders PAUSED.
func (p Pause) Marshal() []byte {
	f := envfile.New()
	f.Set("PAUSED_TS", unit.Epoch(p.At))
	f.Set("PAUSED_ISOTS", unit.ISO(p.At))
	f.Set("REASON", unit.Sanitize(p.Reason))
	f.Set("ENDED", strconv.Itoa(p.Ended))
	f.Set("FAILED", strconv.Itoa(p.Failed))
	f.Set("FAIL_CLASSES", classList(p.Classes))
	f.Set("FAILED_UNITS", strings.Join(p.Units, ","))
	f.Set("PAUSED_BY", p.By)
	f.Set("RESUME", "migdb-migrate --resume (after looking at the failed units)")
	data, _ := f.Marshal()
	return data
}

// ParsePause reads PAUSED.
func ParsePause(data []byte) (*Pause, error) {
	f, err := envfile.Parse(data)
	if err != nil {
		return nil, err
	}
	p := &Pause{Reason: f.Value("REASON"), By: f.Value("PAUSED_BY"), Classes: map[devproto.Class]int{}}
	if ts, err := strconv.ParseInt(f.Value("PAUSED_TS"), 10, 64); err == nil {
		p.At = time.Unix(ts, 0)
	}
	p.Ended, _ = strconv.Atoi(f.Value("ENDED"))
	p.Failed, _ = strconv.Atoi(f.Value("FAILED"))
	for _, kv := range strings.Split(f.Value("FAIL_CLASSES"), ",") {
		if c, n, ok := strings.Cut(kv, ":"); ok {
			p.Classes[devproto.Class(c)], _ = strconv.Atoi(n)
		}
	}
	if u := f.Value("FAILED_UNITS"); u != "" {
		p.Units = strings.Split(u, ",")
	}
	return p, nil
}

// ReadPause reads db/PAUSED; nil when the rollout is not paused.
func ReadPause(db *spool.DB) (*Pause, error) {
	data, err := os.ReadFile(pausedPath(db))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := ParsePause(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pausedPath(db), err)
	}
	return p, nil
}

// Paused reports whether db/PAUSED exists: one stat, for every round of
// claims.
func Paused(db *spool.DB) bool {
	_, err := os.Stat(pausedPath(db))
	return err == nil
}

func classList(m map[devproto.Class]int) string {
	keys := make([]string, 0, len(m))
	for c := range m {
		keys = append(keys, string(c))
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + ":" + strconv.Itoa(m[devproto.Class(k)])
	}
	return strings.Join(keys, ",")
}

// Resume lifts a pause (migdb-migrate --resume): under the rollout's lock
// it removes db/PAUSED and acknowledges every failure so far, so that the
// breaker counts only what ends from now on. It returns the pause lifted
// (nil, and nothing changed, when the rollout was not paused).
func Resume(ctx context.Context, db *spool.DB, now time.Time) (*Pause, error) {
	rec, st, err := lockState(ctx, db)
	if err != nil {
		return nil, err
	}
	defer rec.Close()
	p, err := ReadPause(db)
	if err != nil || p == nil {
		return nil, err
	}
	done, err := countNames(db.Path(spool.Done))
	if err != nil {
		return nil, err
	}
	st.AckAt, st.AckDone = now, done
	if err := rec.Replace(st.Marshal()); err != nil && !errors.Is(err, spool.ErrNotSynced) {
		return nil, err
	}
	if err := db.RemoveUnderRecord(pausedPath(db)); err != nil {
		return nil, fmt.Errorf("remove %s: %w", pausedPath(db), err)
	}
	return p, nil
}

// countNames counts the unit files of a directory.
func countNames(dir string) (int, error) {
	names, err := spool.ReadNames(dir)
	n := 0
	for _, name := range names {
		if _, _, ok := spool.ParseName(name); ok {
			n++
		}
	}
	return n, err
}
