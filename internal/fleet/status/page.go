package status

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
)

// The page is one HTML document with its style inline and no script,
// image or font from anywhere: it works on a host without internet and
// behind any proxy. It reloads itself every refreshSeconds.
const refreshSeconds = 5

// maxFlights bounds the units in flight the page lists.
const maxFlights = 100

// pageData is what the template shows.
type pageData struct {
	S        *Snapshot
	Program  string
	DB       string
	Refresh  int
	States   []stateRow
	Total    int
	Classes  []classRow
	Flights  []flightRow
	More     int
	Progress int // percent of the units ended
	WaveBar  int // percent of the units submitted the open waves hold
}

type stateRow struct {
	Dir     string
	Meaning string
	N       int
	Percent float64
}

type classRow struct {
	Class string
	N     int
	Units []string
	More  int
}

type flightRow struct {
	ID, Phase, Step, For string
}

var meanings = map[spool.Dir]string{
	spool.Units:   "waiting to be migrated",
	spool.Tmp:     "claimed by a worker now",
	spool.Process: "migrated, waiting to be online",
	spool.Done:    "online in balena",
	spool.Fail:    "failed",
}

// WritePage renders the status page of snapshot s.
func WritePage(w io.Writer, s *Snapshot, program, db string) error {
	d := pageData{S: s, Program: program, DB: db, Refresh: refreshSeconds}
	for _, dir := range spool.StateDirs {
		d.Total += s.Units[dir]
	}
	for _, dir := range spool.StateDirs {
		r := stateRow{Dir: string(dir), Meaning: meanings[dir], N: s.Units[dir]}
		if d.Total > 0 {
			r.Percent = float64(r.N) * 100 / float64(d.Total)
		}
		d.States = append(d.States, r)
	}
	if d.Total > 0 {
		d.Progress = (s.Units[spool.Done] + s.Units[spool.Fail]) * 100 / d.Total
	}
	if s.Rollout.Submitted > 0 {
		d.WaveBar = s.Rollout.Limit * 100 / s.Rollout.Submitted
	}
	for _, c := range slices.Sorted(maps.Keys(s.Failed)) {
		n := s.Failed[c]
		units := s.FailedUnits[c]
		d.Classes = append(d.Classes, classRow{Class: string(c), N: n, Units: units, More: n - len(units)})
	}
	for i, f := range s.InFlight {
		if i == maxFlights {
			d.More = len(s.InFlight) - i
			break
		}
		d.Flights = append(d.Flights, flightRow{ID: f.ID, Phase: f.Phase, Step: f.Step, For: ago(s.At.Sub(f.Since))})
	}
	return page.Execute(w, d)
}

// ago formats a duration for people: 42s, 3m10s, 2h05m.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago":  ago,
	"iso":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"pct":  func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
	"rate": func(f float64) string { return fmt.Sprintf("%.1f", f) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .S.Rollout.Paused}}PAUSED · {{end}}{{.Program}} · {{.DB}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em}
.sub{color:#666}
table{border-collapse:collapse;background:#fff}
td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.paused{background:#b00020;color:#fff;padding:.8em 1em;border-radius:4px;margin:1em 0}
.paused b{font-size:1.1em}
.ok{background:#e8f5e9;padding:.5em 1em;border-radius:4px;display:inline-block}
.bar{display:flex;height:18px;width:100%;max-width:720px;border:1px solid #bbb;background:#fff}
.bar span{display:block;height:100%}
.units{background:#cfd8dc}.tmp{background:#ffca28}.process{background:#42a5f5}.done{background:#43a047}.fail{background:#e53935}
.wave{background:#7e57c2}
code{font-size:.95em}
</style>
</head>
<body>
<h1>{{.Program}}: {{.DB}}</h1>
<div class="sub">as of {{iso .S.At}} · this page reloads every {{.Refresh}} s · <a href="/metrics">/metrics</a></div>
{{with .S.Rollout.Paused}}
<div class="paused" id="paused"><b>PAUSED</b> since {{iso .At}} by {{.By}}<br>{{.Reason}}<br>
failed units: {{range $i, $u := .Units}}{{if $i}}, {{end}}<code>{{$u}}</code>{{end}}<br>
No worker starts a unit; units in flight finish. Look at the failed units, then run <code>migdb-migrate --resume</code>.</div>
{{end}}{{with .S.Rollout.PauseError}}<div class="paused">db/PAUSED exists but cannot be read: {{.}}</div>{{end}}
<h2>Progress</h2>
<div class="bar" title="units by state">{{range .States}}{{if .N}}<span class="{{.Dir}}" style="width:{{.Percent}}%" title="{{.Dir}}: {{.N}}"></span>{{end}}{{end}}</div>
<p>{{.Progress}}% of {{.Total}} units ended.
{{if .S.EndedPerHour}}{{rate .S.EndedPerHour}} units ended per hour over the last hour{{if .S.Left}}; about {{ago .S.Left}} left at that rate{{end}}.{{else}}The rate shows after a minute of watching.{{end}}</p>
{{if .S.Rollout.Waves}}
<h2>Rollout</h2>
<p id="wave">Wave <b>{{.S.Rollout.Wave}}</b> of {{.S.Rollout.Of}} (waves <code>{{.S.Rollout.Waves}}</code>): the first {{.S.Rollout.Limit}} of {{.S.Rollout.Submitted}} units submitted may start.</p>
<div class="bar" title="units the open waves hold"><span class="wave" style="width:{{.WaveBar}}%"></span></div>
{{end}}
<h2>Units by state</h2>
<table id="states"><tr><th>directory</th><th>units</th><th>share</th><th>meaning</th></tr>
{{range .States}}<tr><td><code>{{.Dir}}/</code></td><td class="n">{{.N}}</td><td class="n">{{pct .Percent}}</td><td>{{.Meaning}}</td></tr>
{{end}}<tr><th>total</th><th class="n">{{.Total}}</th><th></th><th></th></tr></table>
<h2>Failures by class</h2>
{{if .Classes}}<table id="failures"><tr><th>class</th><th>units</th><th>latest</th></tr>
{{range .Classes}}<tr><td><code>{{.Class}}</code></td><td class="n">{{.N}}</td><td>{{range $i, $u := .Units}}{{if $i}}, {{end}}<code>{{$u}}</code>{{end}}{{if .More}} and {{.More}} more{{end}}</td></tr>
{{end}}</table>{{else}}<div class="ok">No unit has failed.</div>{{end}}
<h2>In flight</h2>
<p>{{len .S.InFlight}} claimed by a worker now; {{.S.WaitingOnline}} migrated and waiting to be online.</p>
{{if .Flights}}<table id="inflight"><tr><th>unit</th><th>phase</th><th>step</th><th>for</th></tr>
{{range .Flights}}<tr><td><code>{{.ID}}</code></td><td>{{.Phase}}</td><td>{{.Step}}</td><td class="n">{{.For}}</td></tr>
{{end}}</table>{{if .More}}<p>and {{.More}} more</p>{{end}}{{end}}
</body>
</html>
`))
