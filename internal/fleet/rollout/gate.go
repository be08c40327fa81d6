// Package rollout decides which due units migdb-migrate may start, so that
// a bad environment strands a few devices, not a fleet:
//
//   - waves (--waves): units start in submission order, and a wave's units
//     only once every unit of the waves before it has ended, in done/
//     (online in balena) or fail/; the highest open wave is kept in
//     db/ROLLOUT, so the workers of every host run one rollout;
//   - a circuit breaker (--max-fail): when the failed share of the ended
//     units passes the limit, db/PAUSED records why and no worker starts a
//     unit until migdb-migrate --resume;
//   - per-site limits (--max-per-group): at most N units of a group
//     between their claim and their end (db/groups/<group>);
//   - maintenance windows (MIG_WINDOW, MIG_TZ): units start only inside.
//
// Gate is the worker loop's worker.Gate. It never moves a unit: units it
// holds back wait in the loop's scanner under a key it releases when the
// reason goes away, so a hundred thousand held units cost nothing per
// claim. What it learns of the database comes from file events and, for
// other NFS hosts, from the loop's safety rescan; every mistake that delay
// can cause holds a unit back longer, none lets one through early.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

// UnitRules are a unit's own rollout settings as written (MIG_GROUP,
// MIG_WINDOW, MIG_TZ), the worker's where the unit has none.
type UnitRules struct {
	Group, Window, Zone string
}

// Gate is a rollout's gate for one worker.
type Gate struct {
	DB *spool.DB
	// Plan is the waves; the zero Plan has none (a plan already in
	// db/ROLLOUT is then followed).
	Plan Plan
	// Breaker is --max-fail; nil for none.
	Breaker *Breaker
	// MaxPerGroup is --max-per-group; 0 for no limit.
	MaxPerGroup int
	// Real is false for pre-flight and rehearsal workers: waves and the
	// breaker judge migrations (a pause holds every worker).
	Real bool
	// Rules gives a unit's rollout settings.
	Rules func(*unit.Unit) UnitRules
	// Rescan is the worker's safety rescan interval.
	Rescan time.Duration
	Log    zerolog.Logger

	order     *spool.Order
	orderSize int64
	ended     *ended
	gone      *gone
	state     State
	stateSeen fileStamp
	paused    bool
	// judged is what the last judgement saw, to skip one that would see
	// the same.
	judged struct {
		changed, n int
		state      State
		paused     bool
	}
	frontier   int             // lowest rank of the open wave not seen ended
	fullSeen   int             // ended.changed at the last full refresh
	waveKeys   map[int]bool    // waves whose units are held
	unordered  map[string]bool // ids held for want of a place in the order
	timed      map[string]time.Time
	round      int
	groupFull  map[string]int      // group → round it was found full
	groupOf    map[string]string   // id → its group, for the ids of full groups
	groupIDs   map[string][]string // full group → its ids in groupOf
	windows    map[string]*Window
	zones      map[string]*time.Location
	groupNames map[string]string

	mu      sync.Mutex
	pending []string // keys Moved releases
}

var _ worker.Gate = (*Gate)(nil)

// Hold keys.
const (
	keyPaused  = "paused"
	keyOrder   = "order"
	keyBadRule = "bad-rule"
)

func waveKey(k int) string         { return "wave:" + strconv.Itoa(k) }
func groupKey(g string) string     { return "group:" + g }
func windowKey(t time.Time) string { return "window:" + strconv.FormatInt(t.Unix(), 10) }

// judging reports whether this worker judges waves or the breaker.
func (g *Gate) judging() bool { return g.Real && (g.Plan.Waves() > 0 || g.Breaker != nil) }

// Open readies the gate before the loop starts: it reads the rollout's
// state and starts a rollout of Plan at its first wave, or follows the
// plan db/ROLLOUT holds when this worker has none. A plan other than the
// one the database runs is refused.
func (g *Gate) Open(ctx context.Context) error {
	g.ended = newEnded(g.DB)
	g.gone = newGone(g.DB, max(g.Rescan, goneEvery))
	g.waveKeys, g.unordered, g.timed = map[int]bool{}, map[string]bool{}, map[string]time.Time{}
	g.groupFull, g.groupOf, g.groupIDs = map[string]int{}, map[string]string{}, map[string][]string{}
	g.windows, g.zones, g.groupNames = map[string]*Window{}, map[string]*time.Location{}, map[string]string{}
	g.paused = Paused(g.DB)
	if !g.Real {
		return nil
	}
	st, err := ReadState(g.DB)
	if err != nil {
		return err
	}
	switch {
	case g.Plan.Waves() == 0 && st.Waves != "":
		p, err := ParseWaves(st.Waves)
		if err != nil {
			return fmt.Errorf("%s: WAVES: %w (fix or remove the file)", statePath(g.DB), err)
		}
		g.Plan = p
		g.Log.Info().Str("waves", p.Spec).Int("wave", st.Wave).Msg("following the rollout db/ROLLOUT runs")
	case g.Plan.Waves() > 0 && st.Waves != "" && st.Waves != g.Plan.Spec:
		return usage.Errorf("--waves %s: the database runs a rollout with waves %s (%s): give the same waves, or remove that file to start a new rollout from its first wave", g.Plan.Spec, st.Waves, statePath(g.DB))
	case g.Plan.Waves() > 0 && st.Waves == "":
		if err := g.start(ctx, time.Now()); err != nil {
			return err
		}
		st, err = ReadState(g.DB)
		if err != nil {
			return err
		}
	}
	g.state = st
	return nil
}

// start writes a new rollout of Plan at its first wave (unless another
// worker just did).
func (g *Gate) start(ctx context.Context, now time.Time) error {
	rec, st, err := lockState(ctx, g.DB)
	if err != nil {
		return err
	}
	defer rec.Close()
	if st.Waves != "" {
		return nil
	}
	st.Waves, st.Wave, st.WaveAt = g.Plan.Spec, 1, now
	if err := rec.Replace(st.Marshal()); err != nil && !errors.Is(err, spool.ErrNotSynced) {
		return err
	}
	g.Log.Info().Str("waves", g.Plan.Spec).Msg("rollout started: wave 1 open")
	return nil
}

// Note implements worker.Gate.
func (g *Gate) Note(u *unit.Unit) any {
	r := g.Rules(u)
	if r.Group == "" && r.Window == "" {
		return plainNote
	}
	n := &note{}
	if r.Group != "" {
		if CheckGroup(r.Group) != nil {
			return badNote
		}
		if s, ok := g.groupNames[r.Group]; ok {
			n.group = s
		} else {
			g.groupNames[r.Group] = r.Group
			n.group = r.Group
		}
	}
	if r.Window != "" {
		w, ok := g.windows[r.Window]
		if !ok {
			var err error
			if w, err = ParseWindow(r.Window); err != nil {
				return badNote
			}
			g.windows[r.Window] = w
		}
		z, ok := g.zones[r.Zone]
		if !ok {
			var err error
			if z, err = ParseZone(r.Zone); err != nil {
				return badNote
			}
			g.zones[r.Zone] = z
		}
		n.window, n.zone = w, z
	}
	return n
}

// note is what the gate keeps of a unit waiting in units/.
type note struct {
	group  string
	window *Window
	zone   *time.Location
	// bad: a setting that does not parse; the unit goes through and the
	// pipeline fails it with the reason.
	bad bool
}

var (
	plainNote = &note{}
	badNote   = &note{bad: true}
)

// Dirs implements worker.Gate.
func (g *Gate) Dirs() []string {
	return []string{g.DB.Root(), g.DB.Path(spool.Done), g.DB.Path(spool.Fail)}
}

// Event implements worker.Gate.
func (g *Gate) Event(path string) bool {
	switch filepath.Dir(path) {
	case g.DB.Root():
		b := filepath.Base(path)
		return b == PausedFile || b == StateFile
	case g.DB.Path(spool.Done), g.DB.Path(spool.Fail):
		woke := false
		if g.judging() {
			g.ended.event(path)
			woke = true
		}
		if id, _, ok := spool.ParseName(filepath.Base(path)); ok {
			if grp, ok := g.groupOf[id]; ok {
				g.releaseLater(groupKey(grp))
				woke = true
			}
		}
		return woke
	}
	return false
}

func (g *Gate) releaseLater(key string) {
	g.mu.Lock()
	g.pending = append(g.pending, key)
	g.mu.Unlock()
}

// Refresh implements worker.Gate.
func (g *Gate) Refresh(now time.Time, full bool) ([]string, time.Time, error) {
	g.round++
	g.mu.Lock()
	release := g.pending
	g.pending = nil
	g.mu.Unlock()
	for _, k := range release {
		if grp, ok := strings.CutPrefix(k, "group:"); ok {
			g.forgetGroup(grp)
		}
	}
	if p := Paused(g.DB); p != g.paused {
		g.paused = p
		if p {
			reason := ""
			if pp, err := ReadPause(g.DB); err == nil && pp != nil {
				reason = pp.Reason
			}
			g.Log.Error().Str("reason", reason).Msg("the rollout is paused (db/PAUSED): starting no unit until migdb-migrate --resume")
		} else {
			g.Log.Info().Msg("the rollout was resumed")
			release = append(release, keyPaused)
		}
	}
	if g.judging() {
		r, err := g.refreshJudging(now, full)
		if err != nil {
			return nil, time.Time{}, err
		}
		release = append(release, r...)
	}
	if full && g.MaxPerGroup > 0 {
		// Other hosts' units may have ended: look at full groups again.
		for grp := range g.groupFull {
			release = append(release, groupKey(grp))
			g.forgetGroup(grp)
		}
	}
	if full {
		if err := g.gone.run(now); err != nil {
			g.Log.Warn().Err(err).Msg("listing the database for units that are gone")
		}
	}
	var next time.Time
	for k, t := range g.timed {
		if !t.After(now) {
			release = append(release, k)
			delete(g.timed, k)
		} else if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return release, next, nil
}

func (g *Gate) forgetGroup(grp string) {
	delete(g.groupFull, grp)
	for _, id := range g.groupIDs[grp] {
		if g.groupOf[id] == grp {
			delete(g.groupOf, id)
		}
	}
	delete(g.groupIDs, grp)
}

// refreshJudging brings the order, the ended units and the state up to
// date, then judges the breaker and the waves.
func (g *Gate) refreshJudging(now time.Time, full bool) ([]string, error) {
	var release []string
	if full {
		if err := g.ended.list(); err != nil {
			return nil, err
		}
	} else {
		g.ended.apply()
	}
	if g.Plan.Waves() > 0 {
		r, err := g.refreshOrder()
		if err != nil {
			return nil, err
		}
		release = append(release, r...)
	}
	r, err := g.refreshState(now)
	if err != nil {
		return nil, err
	}
	release = append(release, r...)
	r, err = g.judge(now, full)
	return append(release, r...), err
}

// refreshOrder reads what was appended to the submission order, and
// first gives a place to units held for want of one.
func (g *Gate) refreshOrder() ([]string, error) {
	var release []string
	if len(g.unordered) > 0 {
		ids := make([]string, 0, len(g.unordered))
		for id := range g.unordered {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if err := g.DB.EnsureOrdered(ids); err != nil {
			return nil, fmt.Errorf("submission order: %w", err)
		}
		g.Log.Warn().Strs("units", ids).Msg("units missing from the submission order (written by hand or by an older migdb-add-unit) were put at its end")
		clear(g.unordered)
		release = append(release, keyOrder)
	}
	var size int64
	st, err := os.Stat(g.DB.OrderPath())
	switch {
	case err == nil:
		size = st.Size()
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if size == g.orderSize && g.order != nil {
		return release, nil
	}
	before := g.order.Len()
	if g.order, err = g.DB.ReadOrder(g.order); err != nil {
		return nil, fmt.Errorf("submission order: %w", err)
	}
	g.orderSize = size
	if g.order.Len() != before {
		// Percentages grow with the fleet: judge every held wave again.
		for k := range g.waveKeys {
			release = append(release, waveKey(k))
		}
		clear(g.waveKeys)
	}
	return release, nil
}

// fileStamp tells whether a small file changed since it was read.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

func stampOf(p string) fileStamp {
	st, err := os.Stat(p)
	if err != nil {
		return fileStamp{}
	}
	var ino int64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = int64(s.Ino)
	}
	return fileStamp{ino: ino, size: st.Size(), mtime: st.ModTime()}
}

// refreshState reads db/ROLLOUT when it changed.
func (g *Gate) refreshState(now time.Time) ([]string, error) {
	stamp := stampOf(statePath(g.DB))
	if stamp == g.stateSeen && stamp != (fileStamp{}) {
		return nil, nil
	}
	g.stateSeen = stamp
	st, err := ReadState(g.DB)
	if err != nil {
		return nil, err
	}
	if g.Plan.Waves() > 0 {
		switch {
		case st.Waves == "":
			// Removed by the operator: a new rollout from the first wave.
			g.Log.Warn().Msg("db/ROLLOUT is gone: starting the rollout again from its first wave")
			if err := g.start(context.Background(), now); err != nil {
				return nil, err
			}
			g.stateSeen = fileStamp{}
			return g.refreshState(now)
		case st.Waves != g.Plan.Spec:
			return nil, usage.Errorf("db/ROLLOUT now runs waves %s, not this worker's %s: stopping", st.Waves, g.Plan.Spec)
		}
	}
	return g.setState(st), nil
}

// setState takes st as the rollout's state and returns the wave keys it
// opens.
func (g *Gate) setState(st State) []string {
	var release []string
	for k := g.state.Wave + 1; k <= st.Wave; k++ {
		if g.waveKeys[k] {
			release = append(release, waveKey(k))
			delete(g.waveKeys, k)
		}
	}
	g.frontier = 0
	g.state = st
	return release
}

// judge trips the breaker or opens waves when what ended allows it.
func (g *Gate) judge(now time.Time, full bool) ([]string, error) {
	j := g.judged
	if j.changed == g.ended.changed && j.n == g.order.Len() && j.state == g.state && j.paused == g.paused && !full {
		return nil, nil
	}
	g.judged.changed, g.judged.n, g.judged.state, g.judged.paused = g.ended.changed, g.order.Len(), g.state, g.paused
	if g.paused {
		return nil, nil
	}
	if g.Breaker != nil {
		if trip, _ := g.Breaker.judge(g.ended, g.state, now); trip {
			return nil, g.pause(now)
		}
	}
	var release []string
	for g.Plan.Waves() > 0 && g.state.Wave < g.Plan.Waves() {
		if !g.waveEnded(g.state.Wave, full) {
			break
		}
		r, opened, err := g.openNext(now)
		release = append(release, r...)
		if err != nil || !opened {
			return release, err
		}
	}
	if full {
		g.fullSeen = g.ended.changed
	}
	return release, nil
}

// waveEnded reports whether every unit of waves 1..k has ended (or is in
// no directory at all, twice in a row).
func (g *Gate) waveEnded(k int, full bool) bool {
	limit := g.Plan.Limit(k, g.order.Len())
	fails := g.ended.failedIDs()
	over := func(id string) bool { return g.ended.done[id] || fails[id] || g.gone.misses[id] >= 2 }
	for r := g.frontier; r < limit; r++ {
		if !over(g.order.ID(r)) {
			g.frontier = r
			if full && g.ended.changed == g.fullSeen {
				g.suspectStuck(r, limit)
			}
			return false
		}
	}
	// Seen ended one by one; check them all at once before trusting it.
	for r := 0; r < limit; r++ {
		if !over(g.order.ID(r)) {
			g.frontier = r
			return false
		}
	}
	g.frontier = limit
	return true
}

// suspectStuck asks the gone check about the few units a wave still waits
// for when nothing has ended for a rescan.
func (g *Gate) suspectStuck(from, limit int) {
	fails := g.ended.failedIDs()
	var ids []string
	for r := from; r < limit && len(ids) <= maxSuspects; r++ {
		if id := g.order.ID(r); !g.ended.done[id] && !fails[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) > maxSuspects {
		return
	}
	for _, id := range ids {
		if g.gone.check(id) {
			g.Log.Warn().Str("unit", id).Int("wave", g.state.Wave).Msg("unit is in no directory of the database (deleted by hand?): its wave does not wait for it")
		}
	}
}

// maxSuspects: a wave waiting for more units than this is waiting for
// units in flight, not for lost ones.
const maxSuspects = 100

// openNext opens the wave after the open one, under the rollout's lock,
// after looking at fail/ afresh and judging the breaker with the
// acknowledgements as they are now. opened is false when it did not.
func (g *Gate) openNext(now time.Time) (release []string, opened bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), lockWait)
	defer cancel()
	rec, st, err := lockState(ctx, g.DB)
	if err != nil {
		return nil, false, err
	}
	defer rec.Close()
	if st.Waves != g.Plan.Spec {
		return nil, false, usage.Errorf("db/ROLLOUT now runs waves %q, not this worker's %s: stopping", st.Waves, g.Plan.Spec)
	}
	if st.Wave > g.state.Wave {
		return g.setState(st), true, nil // another worker opened it
	}
	if err := g.ended.listFail(); err != nil {
		return nil, false, err
	}
	g.state.AckAt, g.state.AckDone = st.AckAt, st.AckDone
	if g.Breaker != nil {
		if trip, p := g.Breaker.judge(g.ended, st, now); trip {
			return nil, false, g.pauseLocked(p)
		}
	}
	if !g.waveEnded(st.Wave, false) {
		return nil, false, nil
	}
	ended := g.Plan.Limit(st.Wave, g.order.Len())
	st.Wave++
	st.WaveAt = now
	if err := rec.Replace(st.Marshal()); err != nil && !errors.Is(err, spool.ErrNotSynced) {
		return nil, false, err
	}
	g.stateSeen = stampOf(statePath(g.DB))
	g.Log.Info().Int("wave", st.Wave).Int("waves", g.Plan.Waves()).Int("ended", ended).
		Int("limit", g.Plan.Limit(st.Wave, g.order.Len())).
		Msgf("wave %d: every unit of the waves before it has ended; its units may start", st.Wave)
	return g.setState(st), true, nil
}

// lockWait bounds a wait for the rollout's lock.
const lockWait = 30 * time.Second

// pause records a pause under the rollout's lock, judging again with the
// acknowledgements as they are now (a --resume may just have come).
func (g *Gate) pause(now time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), lockWait)
	defer cancel()
	rec, st, err := lockState(ctx, g.DB)
	if err != nil {
		return err
	}
	defer rec.Close()
	if err := g.ended.listFail(); err != nil {
		return err
	}
	g.state.AckAt, g.state.AckDone = st.AckAt, st.AckDone
	trip, p := g.Breaker.judge(g.ended, st, now)
	if !trip {
		return nil
	}
	return g.pauseLocked(p)
}

// pauseLocked writes db/PAUSED (the caller holds the rollout's lock).
func (g *Gate) pauseLocked(p Pause) error {
	g.paused = true
	if Paused(g.DB) {
		return nil
	}
	if err := g.DB.WriteUnderRecord(pausedPath(g.DB), p.Marshal()); err != nil {
		return fmt.Errorf("write %s: %w", pausedPath(g.DB), err)
	}
	g.Log.Error().Str("reason", p.Reason).Strs("failed", p.Units).
		Msg("rollout paused (db/PAUSED): no worker starts a unit until migdb-migrate --resume; units in flight finish")
	return nil
}

// Admit implements worker.Gate.
func (g *Gate) Admit(e spool.Entry, now time.Time, claim func() (*spool.Claim, error)) worker.Admission {
	if g.paused {
		return worker.Admission{Hold: keyPaused}
	}
	n, _ := e.Note.(*note)
	if n == nil || n.bad {
		// Not a readable unit, or a setting that does not parse: the
		// pipeline fails it with the reason.
		c, err := claim()
		return worker.Admission{Claim: c, Err: err}
	}
	id, tag, _ := spool.ParseName(e.Name)
	if g.judging() && g.Plan.Waves() > 0 {
		rank, ok := g.order.Rank(id)
		if !ok {
			g.unordered[id] = true
			return worker.Admission{Hold: keyOrder}
		}
		if w := g.Plan.WaveOf(rank, g.order.Len()); w > g.state.Wave {
			g.waveKeys[w] = true
			return worker.Admission{Hold: waveKey(w)}
		}
	}
	if n.window != nil {
		if t := now.In(n.zone); !n.window.Open(t) {
			next := n.window.Next(t)
			key := windowKey(next)
			g.timed[key] = next
			return worker.Admission{Hold: key}
		}
	}
	if g.MaxPerGroup > 0 && n.group != "" {
		return g.admitGroup(n.group, id, tag, now, claim)
	}
	c, err := claim()
	return worker.Admission{Claim: c, Err: err}
}

// admitGroup lets a unit of group grp through when the group has room:
// its line is written, then the unit claimed, under the group's lock.
func (g *Gate) admitGroup(grp, id, tag string, now time.Time, claim func() (*spool.Claim, error)) worker.Admission {
	if g.groupFull[grp] == g.round {
		return worker.Admission{Hold: groupKey(grp)}
	}
	rec, err := g.DB.TryLockRecord(groupPath(g.DB, grp))
	if err != nil {
		return worker.Admission{Err: err}
	}
	defer rec.Close()
	slots := parseSlots(rec.Data)
	if distinct(slots) >= g.MaxPerGroup {
		live := g.live(slots, now)
		if len(live) != len(slots) {
			if err := rec.Replace(marshalSlots(live)); err != nil && !errors.Is(err, spool.ErrNotSynced) {
				return worker.Admission{Err: err}
			}
		}
		slots = live
	}
	if distinct(slots) >= g.MaxPerGroup {
		g.groupFull[grp] = g.round
		for _, s := range slots {
			g.groupOf[s.id] = grp
			g.groupIDs[grp] = append(g.groupIDs[grp], s.id)
		}
		return worker.Admission{Hold: groupKey(grp)}
	}
	// Written down first, then claimed, both under the group's lock: a
	// claimed unit always has its line, so no worker of any host can count
	// the group short, even when this one dies between the two (its line
	// then names a unit back in units/, dropped as a dead worker's).
	mine := append(without(slots, id), slot{id: id, tag: tag, at: now, by: whoAmI()})
	if err := rec.Replace(marshalSlots(mine)); err != nil && !errors.Is(err, spool.ErrNotSynced) {
		return worker.Admission{Err: fmt.Errorf("group %s: %w", grp, err)}
	}
	c, err := claim()
	if err != nil {
		if err := rec.Replace(marshalSlots(slots)); err != nil && !errors.Is(err, spool.ErrNotSynced) {
			g.Log.Warn().Err(err).Str("group", grp).Str("unit", id).Msg("could not take back a group line after a failed claim; it is dropped when the group is full")
		}
		return worker.Admission{Err: err}
	}
	return worker.Admission{Claim: c}
}

// Moved implements worker.Gate: a unit that comes back to units/ or
// fails gives its group line back at once.
func (g *Gate) Moved(c *spool.Claim, to spool.Dir) {
	if g.MaxPerGroup == 0 || c.Unit == nil || (to != spool.Units && to != spool.Fail) {
		return
	}
	grp := g.Rules(c.Unit).Group
	if grp == "" || CheckGroup(grp) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockWait)
	defer cancel()
	rec, err := g.DB.LockRecord(ctx, groupPath(g.DB, grp))
	if err != nil {
		g.Log.Warn().Err(err).Str("group", grp).Str("unit", c.ID()).Msg("could not give back the unit's group line; it is cleared when the group is full")
		return
	}
	defer rec.Close()
	slots := parseSlots(rec.Data)
	if left := without(slots, c.ID()); len(left) != len(slots) {
		if err := rec.Replace(marshalSlots(left)); err != nil && !errors.Is(err, spool.ErrNotSynced) {
			g.Log.Warn().Err(err).Str("group", grp).Str("unit", c.ID()).Msg("could not give back the unit's group line; it is cleared when the group is full")
			return
		}
	}
	g.releaseLater(groupKey(grp))
}
