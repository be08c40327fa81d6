package rollout

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// judge counts the units ended since the last --resume (all of them
// before the first) and says whether the breaker trips, with the pause to
// record when it does.
func (b Breaker) judge(e *ended, st State, now time.Time) (bool, Pause) {
	p := Pause{At: now, Classes: map[devproto.Class]int{}, By: whoAmI()}
	var failed []*failure
	for _, f := range e.fail {
		if st.AckAt.IsZero() || f.at.After(st.AckAt) {
			failed = append(failed, f)
			p.Classes[f.class]++
		}
	}
	done := max(len(e.done)-st.AckDone, 0)
	p.Failed, p.Ended = len(failed), len(failed)+done
	sort.Slice(failed, func(i, j int) bool { return failed[i].at.Before(failed[j].at) })
	for _, f := range failed {
		if len(p.Units) == maxPauseUnits {
			break
		}
		p.Units = append(p.Units, f.id)
	}
	since := "since the rollout began"
	if !st.AckAt.IsZero() {
		since = "since the last --resume (" + unit.ISO(st.AckAt) + ")"
	}
	var why []string
	if b.All != nil && b.All.Passed(p.Failed, p.Ended) {
		why = append(why, fmt.Sprintf("%d of %d units ended %s failed, more than --max-fail %s allows", p.Failed, p.Ended, since, b.All))
	}
	for _, c := range slices.Sorted(maps.Keys(b.ByClass)) {
		l := b.ByClass[c]
		if n := p.Classes[c]; l.Passed(n, p.Ended) {
			why = append(why, fmt.Sprintf("%d of %d units ended %s failed as %s, more than %s=%s allows", n, p.Ended, since, c, c, l))
		}
	}
	p.Reason = strings.Join(why, "; ")
	return len(why) > 0, p
}

// whoAmI names this worker for the files it writes: host and pid.
func whoAmI() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}
