// Package buildinfo is what a shipped program says about itself: its
// version, commit and build date (stamped at link time by scripts/release),
// and its man page and shell completion, generated from its own flags so
// they never drift from --help. Fleet and device programs both use it, so it
// imports neither side.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Stamped by the linker (-ldflags "-X <this package>.version=..."); never
// assigned at run time. A plain `go build` leaves version "dev".
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// Info identifies one build.
type Info struct {
	Version string // release version, "dev" for a plain go build
	Commit  string // git commit, "unknown" when neither stamped nor recorded by go build
	Date    string // build time (RFC 3339, UTC), "unknown" when not stamped
}

// Get returns this binary's build identity. An unstamped build falls back
// on the commit that `go build` records from git, when it did.
func Get() Info {
	i := Info{Version: version, Commit: commit, Date: date}
	if i.Commit == "" {
		i.Commit = vcsRevision()
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Date == "" {
		i.Date = "unknown"
	}
	return i
}

// String is the text --version prints after the program's name.
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s)", i.Version, i.Commit, i.Date)
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}
