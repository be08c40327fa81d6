package e2e

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// phases are the table's columns: each runs from one mark to the next.
var phases = []struct{ name, from, to string }{
	{"connect+probe+transfer", markConnect, markPreflight},
	{"pre-flight+register", markPreflight, markStage1},
	{"stage 1", markStage1, markMigrated},
	{"reboot→stage 2", markMigrated, markStage2},
	{"verify+flash+reboot", markStage2, markBooted},
	{"first boot→online", markBooted, markOnline},
	{"check-done", markOnline, markEnd},
}

// WriteTable prints the wall time of every phase of every device, then the
// run's last line: e2e done=<n> expected=<n> wall_s=<seconds>.
func (res *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"device", "boot→ssh"}
	for _, p := range phases {
		head = append(head, p.name)
	}
	fmt.Fprintln(tw, strings.Join(append(head, "total", "ssh looks", "ended", "verdict"), "\t"))
	for _, d := range res.Devices {
		row := []string{d.Name, secs(d.Booted)}
		for _, p := range phases {
			from, ok1 := d.at(p.from)
			to, ok2 := d.at(p.to)
			if !d.Kind.spec().flashed && p.to == markEnd {
				from, ok1 = d.at(markBooted) // no stand-in: the old system is back
			}
			if ok1 && ok2 {
				row = append(row, secs(to.Sub(from)))
			} else {
				row = append(row, "-")
			}
		}
		total := "-"
		if s, ok := d.at(markSubmitted); ok {
			if e, ok := d.at(markEnd); ok {
				total = secs(e.Sub(s))
			}
		}
		ended := d.Final + "/"
		if d.Class != "" {
			ended += " " + d.Class
		}
		if d.Rehearsal != "" {
			ended += " REHEARSAL=" + d.Rehearsal
		}
		verdict := "ok"
		if d.Err != nil {
			verdict = "WRONG: " + d.Err.Error()
		}
		looks := d.Looks // migdb-check-done's paced SSH looks for stage 2's refusal
		switch {
		case d.Kind.spec().rehearsal:
			looks = "-" // a rehearsal is looked at at every check
		case looks == "":
			looks = "0"
		}
		fmt.Fprintln(tw, strings.Join(append(row, total, looks, ended, verdict), "\t"))
	}
	tw.Flush()
	if res.API.Routes != nil {
		res.API.write(w, res.Expected)
	}
	fmt.Fprintf(w, "e2e done=%d expected=%d wall_s=%d\n", res.Done, res.Expected, int(res.Wall.Seconds()))
}

func secs(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
}
