package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// InvalidError names the setting, its value source and what is wrong.
type InvalidError struct {
	Setting, Source, Problem string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("setting %s (from %s): %s", e.Setting, e.Source, e.Problem)
}

// Unwrap makes it a usage error: the binaries exit 2.
func (e *InvalidError) Unwrap() error { return usage.Err }

type value struct {
	raw    string
	source string
}

// Settings are resolved values for one binary (and optionally one unit),
// typed in the groups of typed.go.
type Settings struct {
	Process Process
	Balena  Balena
	Migrate MigrateTuning
	SSH     SSH
	Check   CheckTuning
	Unit    Unit
	Rollout Rollout
	// Warnings are things worth telling the operator (unknown keys...).
	Warnings []string

	bin  Binary
	vals map[string]value // raw values and their sources, by setting name
}

// Layer is one source of values, applied over the layers before it.
type Layer struct {
	Source string            // e.g. "flag --port", "environment", "settings file x"
	Values map[string]string // setting name → raw value
	// Sources optionally names the source per setting (e.g. "flag --port").
	Sources map[string]string
}

// Resolve builds settings for bin from defaults and the given layers,
// lowest precedence first. Every value is validated.
func Resolve(bin Binary, layers ...Layer) (*Settings, error) {
	s := &Settings{bin: bin, vals: map[string]value{}}
	for _, d := range Defs(bin) {
		if d.Default != "" {
			s.vals[d.Name] = value{d.Default, "default"}
		}
	}
	for _, l := range layers {
		if err := s.apply(l, false); err != nil {
			return nil, err
		}
	}
	s.fill()
	return s, nil
}

func (s *Settings) apply(l Layer, unitLayer bool) error {
	names := make([]string, 0, len(l.Values))
	for n := range l.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		raw := l.Values[name]
		d, ok := lookup(name)
		if !ok || !d.appliesTo(s.bin) && !(unitLayer && d.Unit) {
			continue
		}
		src := l.Source
		if l.Sources[name] != "" {
			src = l.Sources[name]
		}
		if err := d.validate(raw); err != nil {
			return &InvalidError{Setting: name, Source: src, Problem: err.Error()}
		}
		// The two ways of giving the migration environment exclude each
		// other: a layer that sets one hides the other from lower layers.
		switch name {
		case CfgDir:
			delete(s.vals, CfgArchive)
		case CfgArchive:
			delete(s.vals, CfgDir)
		}
		s.vals[name] = value{raw, src}
	}
	if l.Values[CfgDir] != "" && l.Values[CfgArchive] != "" {
		return &InvalidError{Setting: CfgDir, Source: l.Source, Problem: "both MIG_CFG_DIR and MIG_CFG_ARCHIVE are set: give only one"}
	}
	return nil
}

func (d Def) appliesTo(bin Binary) bool {
	for _, b := range d.Bins {
		if b == bin {
			return true
		}
	}
	return false
}

func (d Def) validate(raw string) error {
	if err := envfile.CheckValue(raw); err != nil {
		return err
	}
	switch d.Kind {
	case Port:
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port number (1-65535)", raw)
		}
	case Count:
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a whole number of at least 1", raw)
		}
	case Seconds:
		if _, err := parseSeconds(raw); err != nil {
			return err
		}
	case Bool:
		if _, err := ParseBool(raw); err != nil {
			return err
		}
	case Host:
		return checkHost(raw)
	case Enum:
		for _, e := range d.Enum {
			if strings.EqualFold(raw, e) {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", raw, strings.Join(d.Enum, ", "))
	}
	if d.check != nil && raw != "" {
		return d.check(raw)
	}
	return nil
}

// parseSeconds accepts whole seconds ("180") or a Go duration ("3m").
func parseSeconds(raw string) (time.Duration, error) {
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is negative: give seconds ≥ 0", raw)
		}
		return time.Duration(n) * time.Second, nil
	}
	dur, err := time.ParseDuration(raw)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds (or a duration like 90s, 5m)", raw)
	}
	if dur < 0 {
		return 0, fmt.Errorf("%q is negative: give seconds ≥ 0", raw)
	}
	return dur, nil
}

// processWide settings belong to a worker process; a unit cannot change them.
var processWide = map[string]bool{
	DBDir: true, CfgFile: true, LogTo: true, LogFormat: true, LogLevel: true, Color: true, Jobs: true,
	BalenaAPI: true, BalenaToken: true, Cloud: true, Pretend: true, Rehearsal: true,
	Waves: true, MaxFail: true, MaxPerGroup: true, HTTP: true,
}

// ParseBool reads a yes/no setting; anything but the listed words is an
// error, so a typo never silently means "no".
func ParseBool(raw string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a yes/no value: write TRUE or FALSE", raw)
}

// ForUnit returns the settings with a unit file's MIG_* values on top.
func (s *Settings) ForUnit(unitValues map[string]string, unitName string) (*Settings, error) {
	c := &Settings{bin: s.bin, vals: make(map[string]value, len(s.vals)), Warnings: s.Warnings}
	for k, v := range s.vals {
		c.vals[k] = v
	}
	vals := map[string]string{}
	for k, v := range unitValues {
		if d, ok := lookup(k); ok && (d.Unit || d.appliesTo(s.bin) && !processWide[k]) {
			vals[k] = v
		}
	}
	if err := c.apply(Layer{Source: "unit file " + unitName, Values: vals}, true); err != nil {
		return nil, err
	}
	c.fill()
	return c, nil
}

// Raw returns a setting's value as given ("" when unset), for messages
// and tests; programs read the typed fields.
func (s *Settings) Raw(name string) string { return s.vals[name].raw }

// Source tells where a setting's value came from ("" when unset).
func (s *Settings) Source(name string) string { return s.vals[name].source }

// UnitValues returns the unit-specific settings that are set, for add-unit.
func (s *Settings) UnitValues() map[string]string {
	m := map[string]string{}
	for name, v := range s.vals {
		if d, ok := lookup(name); ok && d.Unit && v.raw != "" && v.source != "default" {
			m[name] = v.raw
		}
	}
	return m
}

// FlagUnitValues returns the unit-specific settings given on the command
// line: what an operator means to change when retrying a unit.
func (s *Settings) FlagUnitValues() map[string]string {
	m := map[string]string{}
	for name, v := range s.vals {
		if d, ok := lookup(name); ok && d.Unit && strings.HasPrefix(v.source, "flag ") {
			m[name] = v.raw
		}
	}
	return m
}

// ExpandHome replaces a leading ~/ with the user's home directory.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// ReadFileLayer reads a MIG_CFG settings file. One file may serve all three
// programs, so a key of another program is skipped quietly; a key no
// program knows (a typo, most likely) produces a warning. Neither makes the
// file fail.
func ReadFileLayer(bin Binary, path string) (Layer, []string, error) {
	f, err := envfile.Read(ExpandHome(path))
	if err != nil {
		return Layer{}, nil, &InvalidError{Setting: CfgFile, Source: "settings file " + path, Problem: fmt.Sprintf("cannot read it: %v", err)}
	}
	l := Layer{Source: "settings file " + path, Values: map[string]string{}}
	var warns []string
	for _, p := range f.Pairs() {
		d, ok := lookup(p.Key)
		if !ok {
			warns = append(warns, fmt.Sprintf("settings file %s: %s is not a setting of any migdb program; ignored", path, p.Key))
			continue
		}
		if !d.appliesTo(bin) {
			continue
		}
		l.Values[p.Key] = p.Value
	}
	return l, warns, nil
}
