package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
)

func TestWaves(t *testing.T) {
	p, err := ParseWaves("1,10,25%,100%")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		k, submitted, limit int
	}{
		{1, 1000, 1}, {2, 1000, 10}, {3, 1000, 250}, {4, 1000, 1000},
		{3, 20, 10}, // 25% of 20 is 5, but a wave never holds less than the one before
		{2, 4, 4},   // never more than were submitted
		{3, 1001, 251},
		{1, 0, 0},
	}
	for _, c := range cases {
		if got := p.Limit(c.k, c.submitted); got != c.limit {
			t.Errorf("Limit(%d, %d) = %d, want %d", c.k, c.submitted, got, c.limit)
		}
	}
	for rank, want := range map[int]int{0: 1, 1: 2, 9: 2, 10: 3, 249: 3, 250: 4, 999: 4} {
		if got := p.WaveOf(rank, 1000); got != want {
			t.Errorf("WaveOf(%d) = %d, want %d", rank, got, want)
		}
	}
	for _, bad := range []string{"", "0,100%", "10,5,100%", "10%,5%,100%", "1,10", "1,x,100%", "150%", "-3,100%", "1,,100%"} {
		if _, err := ParseWaves(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := ParseWaves("100%"); err != nil || p.Waves() != 1 || p.Limit(1, 7) != 7 {
		t.Errorf("100%%: %v %+v", err, p)
	}
}

func TestMaxFail(t *testing.T) {
	cases := []struct {
		spec          string
		failed, ended int
		class         devproto.Class
		classN        int
		trip          bool
	}{
		{"0", 1, 10, "", 0, true},
		{"2", 2, 10, "", 0, false},
		{"2", 3, 10, "", 0, true},
		{"10%", 1, 10, "", 0, false}, // 10% is not above 10%
		{"10%", 2, 10, "", 0, true},
		{"10%", 1, 1, "", 0, true}, // the canary
		{"50%,stage2=0", 1, 10, devproto.ClassStage2, 1, true},
		{"50%,stage2=0", 1, 10, devproto.ClassNoSpace, 1, false},
		{"stage2=1", 5, 10, devproto.ClassStage2, 1, false},
		{"stage2=1", 5, 10, devproto.ClassStage2, 2, true},
	}
	for _, c := range cases {
		b, err := ParseMaxFail(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		trip := b.All != nil && b.All.Passed(c.failed, c.ended)
		for cl, l := range b.ByClass {
			if cl == c.class && l.Passed(c.classN, c.ended) {
				trip = true
			}
		}
		if trip != c.trip {
			t.Errorf("%q with %d/%d failed (%s: %d): trip %v", c.spec, c.failed, c.ended, c.class, c.classN, trip)
		}
	}
	for _, bad := range []string{"", "ten", "-1", "100%", "stage3=0", "stage2=0,10%", "stage2=x"} {
		if _, err := ParseMaxFail(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWindow(t *testing.T) {
	berlin, err := ParseZone("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string, loc *time.Location) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	night, _ := ParseWindow("22:00-05:00")
	cases := []struct {
		w    *Window
		now  string
		open bool
		next string
	}{
		{night, "2026-03-10 21:59", false, "2026-03-10 22:00"},
		{night, "2026-03-10 22:00", true, "2026-03-11 22:00"},
		{night, "2026-03-11 04:59", true, "2026-03-11 22:00"},
		{night, "2026-03-11 05:00", false, "2026-03-11 22:00"},
		{night, "2026-03-11 12:00", false, "2026-03-11 22:00"},
	}
	two, _ := ParseWindow("01:00-04:00, 13:30-14:00")
	cases = append(cases,
		struct {
			w    *Window
			now  string
			open bool
			next string
		}{two, "2026-03-10 05:00", false, "2026-03-10 13:30"},
		struct {
			w    *Window
			now  string
			open bool
			next string
		}{two, "2026-03-10 13:45", true, "2026-03-11 01:00"})
	for _, c := range cases {
		now := at(c.now, berlin)
		if got := c.w.Open(now); got != c.open {
			t.Errorf("%s at %s: open %v", c.w.Spec, c.now, got)
		}
		if got, want := c.w.Next(now), at(c.next, berlin); !got.Equal(want) {
			t.Errorf("%s at %s: next %v, want %v", c.w.Spec, c.now, got, want)
		}
	}
	// The night the clocks go forward in Berlin (02:00 is 03:00): a
	// window opening at 02:30 opens at 03:30 local, an hour later than
	// its name, but on that night.
	dst, _ := ParseWindow("02:30-04:00")
	if got := dst.Next(at("2026-03-29 01:00", berlin)); got.Format("2006-01-02") != "2026-03-29" {
		t.Errorf("DST night: next %v", got)
	}
	for _, bad := range []string{"", "22-05", "22:00", "25:00-01:00", "10:00-10:00", "10:00-11:60"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("window %q accepted", bad)
		}
	}
}

func TestZone(t *testing.T) {
	for spec, off := range map[string]int{"UTC+05:30": 5*3600 + 1800, "UTC-3": -3 * 3600, "UTC+0": 0} {
		z, err := ParseZone(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if _, got := time.Date(2026, 1, 1, 0, 0, 0, 0, z).Zone(); got != off {
			t.Errorf("%s: offset %d", spec, got)
		}
	}
	if z, err := ParseZone(""); err != nil || z != time.Local {
		t.Errorf("empty zone: %v %v", z, err)
	}
	for _, bad := range []string{"Mars/Base", "UTC+15", "UTC+5:70"} {
		if _, err := ParseZone(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("zone %q: %v", bad, err)
		}
	}
}

func TestCheckGroup(t *testing.T) {
	for _, ok := range []string{"site-17", "eu.west:3", "A"} {
		if err := CheckGroup(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", ".x", "a/b", "a b", strings.Repeat("x", 129)} {
		if CheckGroup(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
