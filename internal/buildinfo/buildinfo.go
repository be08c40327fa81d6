// Package buildinfo is what a shipped program says about itself: its
// version, commit and build date (stamped at link time by scripts/release,
// else what Go recorded at build time), and its man page and shell
// completion, generated from its own flags so they never drift from --help.
// Fleet and device programs both use it, so it imports neither side.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Stamped by the linker (-ldflags "-X <this package>.version=..."); never
// assigned at run time. A plain `go build` leaves them as they are here.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// Info identifies one build.
type Info struct {
	Version string // release version; else Go's module version; else "dev"
	Commit  string // git commit ("-dirty": built from a changed tree); "unknown" when neither stamped nor recorded
	Date    string // build time (RFC 3339, UTC) as stamped; "" when not stamped
	// Committed is the commit's time as Go recorded it, for a build that
	// was not stamped with its build time.
	Committed string
}

// Get returns this binary's build identity: what scripts/release stamped,
// and for what it did not stamp, what `go build` or `go install` recorded
// (the module version, vcs.revision, vcs.modified, vcs.time).
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(stamp{version, commit, date}, bi)
}

// stamp holds the link-time values.
type stamp struct{ version, commit, date string }

// resolve prefers each stamped value and falls back on bi (nil when the
// binary carries no build information).
func resolve(s stamp, bi *debug.BuildInfo) Info {
	i := Info{Version: s.version, Commit: s.commit, Date: s.date}
	var rev, when string
	dirty := false
	if bi != nil {
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.time":
				when = kv.Value
			case "vcs.modified":
				dirty = kv.Value == "true"
			}
		}
		// "(devel)" is what Go records when it knows no version.
		if (i.Version == "" || i.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		i.Commit = rev
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Date == "" {
		i.Committed = when
	}
	return i
}

// String is the text --version prints after the program's name.
func (i Info) String() string {
	switch {
	case i.Date != "":
		return fmt.Sprintf("%s (commit %s, built %s)", i.Version, i.Commit, i.Date)
	case i.Committed != "":
		return fmt.Sprintf("%s (commit %s, committed %s)", i.Version, i.Commit, i.Committed)
	}
	return fmt.Sprintf("%s (commit %s, built unknown)", i.Version, i.Commit)
}
