package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The typed settings. Resolve fills them from the table in defs.go: each
// definition names the field it sets, so what a program is configured with
// is visible here and a misspelt setting is a compile error.

// Process is what every program is configured with.
type Process struct {
	DBDir     string        // the directory holding db/ (~ expanded)
	CfgFile   string        // the MIG_CFG settings file, if any
	LogTo     string        // log file or directory; "" for stderr
	LogFormat string        // "console" or "json"
	LogLevel  string        // "debug", "info", "warn" or "error"
	Color     string        // "on", "off" or "" (automatic)
	Jobs      int           // units handled at once (workers)
	Rescan    time.Duration // between full listings of the input directory (workers)
	HTTP      string        // address of the status page and metrics; "" for none
}

// Rollout is how migdb-migrate rolls a fleet out (package rollout): the
// values as given, checked by rollout's parsers.
type Rollout struct {
	Waves       string // "" for no waves
	MaxFail     string // "" for no circuit breaker
	MaxPerGroup int    // 0 for no limit
}

// Balena is how a worker reaches balena.
type Balena struct {
	Client string // "api" or "cli"
	API    string // API URL
	Token  string // secret: never log it
}

// MigrateTuning is the tuning of migdb-migrate; a unit file may override
// it for its own unit.
type MigrateTuning struct {
	MinAge       time.Duration
	Duration     time.Duration // wait after migrating before checking
	ConnAttempts int
	ReconnTime   time.Duration // first reconnect delay, doubled each retry
	TxTimeout    time.Duration
	ExecTimeout  time.Duration
	Pretend      bool // pre-flight only: nothing registered, no reboot
	Rehearsal    bool // the environment's stage 2 does not flash, on purpose
	TagDevices   bool // tag devices in balena with their unit id and address
	Progress     bool // show the migration's progress on the device's dashboard entry
}

// SSH is how both workers reach devices: migdb-migrate to migrate them,
// migdb-check-done to see a rehearsed device back on its old system.
type SSH struct {
	DefSSHOpts    string // OpenSSH options for every unit, before the unit's own
	KnownHosts    string
	HostKeyPolicy string // "strict", "accept-new" or "off"
	ConnTimeout   time.Duration
}

// CheckTuning is the tuning of migdb-check-done; a unit file may
// override it for its own unit.
type CheckTuning struct {
	MaxStatusAge  time.Duration
	CheckInterval time.Duration
	// Stage2LookAfter: a device not online this long after migration is
	// looked at over SSH (at a doubling interval) for stage 2's refusal;
	// 0 looks only at MaxStatusAge.
	Stage2LookAfter time.Duration
}

// Unit is what one device's migration is configured with: add-unit writes
// these into the unit file, and a worker's own values are the defaults.
type Unit struct {
	App        string // the balena fleet
	BalenaVer  string
	CfgDir     string // migration environment directory (~ expanded)
	CfgArchive string // or a .tgz of it (~ expanded)
	ImageURL   string // the device fetches IMAGE_NAME from here instead
	OSSSHKey   string // public key file for config.json's os.sshKeys (~ expanded)
	OSSSHPort  int    // balenaOS's host SSH port (22222)
	SSHHost    string
	SSHUser    string
	SSHPort    int
	SSHPasswd  string // secret: never log it
	SSHOpts    string // the unit's own OpenSSH options
	SSHKey     string // private key file (~ expanded)
	Group      string // the unit's site, for --max-per-group
	Window     string // maintenance window, e.g. 22:00-05:00
	TZ         string // the window's time zone; "" for the host's
}

// Env is the unit's migration environment: a directory or an archive.
func (u Unit) Env() string {
	if u.CfgDir != "" {
		return u.CfgDir
	}
	return u.CfgArchive
}

// Missing names the first setting a unit cannot be migrated without, with
// how to give it; "" when none is missing.
func (u Unit) Missing() string {
	switch {
	case u.SSHHost == "":
		return "MIG_SSH_HOST is not set: give the device's address with migdb-add-unit --host (or a worker default)"
	case u.App == "":
		return "MIG_APP is not set: give the balena fleet with --app"
	case u.BalenaVer == "":
		return "MIG_BALENA_VER is not set: give the balenaOS version with --balena-ver"
	case u.Env() == "":
		return "no migration environment: set MIG_CFG_DIR (--cfg-dir) or MIG_CFG_ARCHIVE (--cfg-tgz)"
	}
	return ""
}

// field points a definition at the typed field it fills.
type field func(s *Settings) any

func (s *Settings) fill() {
	for _, d := range defs {
		if d.field == nil {
			continue
		}
		v, ok := s.vals[d.Name]
		if !ok || !d.appliesTo(s.bin) && !d.Unit {
			continue
		}
		raw := v.raw
		switch p := d.field(s).(type) {
		case *string:
			switch {
			case d.Kind == Enum:
				raw = strings.ToLower(raw)
			case d.Path:
				raw = ExpandHome(raw)
			}
			*p = raw
		case *int:
			*p, _ = strconv.Atoi(raw) // validated already
		case *time.Duration:
			*p, _ = parseSeconds(raw)
		case *bool:
			*p, _ = ParseBool(raw)
		default:
			panic(fmt.Sprintf("config: %s points at a %T", d.Name, p))
		}
	}
}
