// Package addunit submits devices to the database: one unit from settings,
// many from a CSV file (all or nothing), or a failed unit back for retry.
package addunit

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Adder writes new units into a database.
type Adder struct {
	Base     string           // the database is opened (and created) only to write
	Settings *config.Settings // unit-specific values are copied into each unit
	Now      func() time.Time
	// Created, when set, hears of a database made by this add (its db/ path).
	Created func(root string)
}

// Add submits one unit and returns its file's path.
func (a *Adder) Add(id string) (string, error) {
	u, err := a.build(id, a.Settings)
	if err != nil {
		return "", err
	}
	paths, err := a.write([]*unit.Unit{u})
	if err != nil {
		return "", err
	}
	return paths[0], nil
}

// AddCSV submits every row of a CSV file. The header names the columns:
// unit_id, then settings by flag name (host, user, port, passwd, ssh_opts,
// app, balena_ver, cfg_dir, cfg_tgz, identity) or variable (MIG_SSH_HOST).
// Every row is validated before anything is written; one bad row writes
// nothing.
func (a *Adder) AddCSV(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, usage.Errorf("CSV file %s: %v", path, err)
	}
	defer f.Close()
	units, err := a.parseCSV(f, path)
	if err != nil {
		return 0, err
	}
	if _, err := a.write(units); err != nil {
		return 0, err
	}
	return len(units), nil
}

func (a *Adder) write(units []*unit.Unit) ([]string, error) {
	db, created, err := spool.Create(a.Base)
	if err != nil {
		return nil, err
	}
	if created && a.Created != nil {
		a.Created(db.Root())
	}
	paths, err := db.AddMany(units)
	if errors.Is(err, spool.ErrExists) {
		return nil, fmt.Errorf("%w; nothing was written (use --retry for a failed unit, or pick another id)", err)
	}
	return paths, err
}

func (a *Adder) build(id string, s *config.Settings) (*unit.Unit, error) {
	if err := unit.CheckID(id); err != nil {
		return nil, usage.Wrap(err)
	}
	u, err := unit.New(id, a.Now())
	if err != nil {
		return nil, usage.Wrap(err)
	}
	vals := s.UnitValues()
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := u.Set(k, vals[k]); err != nil {
			return nil, usage.Errorf("unit %s: %v", id, err)
		}
	}
	return u, nil
}

func (a *Adder) parseCSV(r io.Reader, path string) ([]*unit.Unit, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, usage.Errorf("CSV file %s: %v", path, err)
	}
	if len(rows) < 2 {
		return nil, usage.Errorf("CSV file %s: needs a header row and at least one unit", path)
	}
	cols, err := columns(rows[0], path)
	if err != nil {
		return nil, err
	}
	var units []*unit.Unit
	seen := map[string]int{}
	for i, row := range rows[1:] {
		line := i + 2
		vals := map[string]string{}
		id := ""
		for j, name := range cols {
			v := strings.TrimSpace(row[j])
			if name == "" {
				id = v
			} else if v != "" {
				vals[name] = v
			}
		}
		if prev, dup := seen[id]; dup {
			return nil, usage.Errorf("CSV file %s line %d: unit %s already appears on line %d; nothing was written", path, line, id, prev)
		}
		seen[id] = line
		s, err := a.Settings.ForUnit(vals, fmt.Sprintf("CSV %s line %d", path, line))
		if err != nil {
			return nil, usage.Wrap(fmt.Errorf("%w; nothing was written", err))
		}
		u, err := a.build(id, s)
		if err != nil {
			return nil, usage.Errorf("CSV file %s line %d: %v; nothing was written", path, line, err)
		}
		units = append(units, u)
	}
	return units, nil
}

// columns maps header names to setting names ("" for unit_id).
func columns(header []string, path string) ([]string, error) {
	byName := map[string]string{}
	for _, d := range config.Defs(config.AddUnit) {
		if !d.Unit {
			continue
		}
		byName[strings.ToLower(d.Name)] = d.Name
		for _, f := range d.Flags {
			byName[strings.ReplaceAll(f, "-", "_")] = d.Name
		}
	}
	cols := make([]string, len(header))
	hasID := false
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "unit_id" || h == "id" {
			hasID = true
			cols[i] = ""
			continue
		}
		name, ok := byName[h]
		if !ok || len(h) == 1 {
			return nil, usage.Errorf("CSV file %s: column %q is not a unit setting (use unit_id, host, user, port, passwd, ssh_opts, app, balena_ver, cfg_dir, cfg_tgz, identity)", path, header[i])
		}
		cols[i] = name
	}
	if !hasID {
		return nil, usage.Errorf("CSV file %s: the header has no unit_id column", path)
	}
	return cols, nil
}

// Retry moves a failed unit back to units/, with set (unit settings such
// as MIG_SSH_HOST, typically those given as flags) applied to it.
func Retry(base, id string, set map[string]string) (string, error) {
	if err := unit.CheckID(id); err != nil {
		return "", usage.Wrap(err)
	}
	db, err := spool.OpenExisting(base)
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return db.Retry(id, func(u *unit.Unit) error {
		for _, k := range keys {
			if err := u.Set(k, set[k]); err != nil {
				return usage.Errorf("%s: %v", k, err)
			}
		}
		return nil
	})
}
