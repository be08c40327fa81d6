// Command migdb-add-unit submits devices ("units") for migration.
package main

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
	"github.com/fleetmig/balena-migrate/internal/fleet/addunit"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(exitcode.Of(cliapp.Run(&cli.App{
		Name:      string(config.AddUnit),
		Usage:     "submit a device for migration",
		ArgsUsage: "<unit-id>",
		Flags: append(config.Flags(config.AddUnit),
			&cli.StringFlag{Name: "from-csv", Usage: "submit every row of a CSV file (header: unit_id,host,user,...); all or nothing"},
			&cli.StringFlag{Name: "retry", Usage: "move the failed unit `ID` from fail/ back to units/, with the unit settings given as flags (--host, --port, ...) applied"},
		),
		HideHelpCommand: true,
		Action:          run,
	},
		buildinfo.Item{Tag: "migdb-add-unit --cfg fleet.cfg --host 10.20.0.11 -u pi gw-0001", Text: "Submit one device; the first unit makes the database in MIG_DB_DIR (--base)."},
		buildinfo.Item{Tag: "migdb-add-unit --cfg fleet.cfg --from-csv fleet.csv", Text: "Submit every row of a CSV file (header unit_id,host,user,port,...); one bad row writes nothing."},
		buildinfo.Item{Tag: "migdb-add-unit --cfg fleet.cfg --retry gw-0001 --host 10.20.0.99", Text: "Move a failed unit back to units/ with a new address."},
	)))
}

func run(c *cli.Context) (err error) {
	s, err := config.FromCLI(c, config.AddUnit)
	if err != nil {
		return err
	}
	log, end, err := cliapp.Logger(s, config.AddUnit)
	if err != nil {
		return err
	}
	defer func() { end(err) }()
	modes := 0
	for _, set := range []bool{c.NArg() > 0, c.IsSet("from-csv"), c.IsSet("retry")} {
		if set {
			modes++
		}
	}
	if modes != 1 || c.NArg() > 1 {
		return usage.Errorf("give exactly one of: a unit id, --from-csv FILE, --retry ID (see --help)")
	}
	a := &addunit.Adder{Base: s.Process.DBDir, Settings: s, Now: time.Now, Created: func(root string) {
		log.Info().Str("db", root).Msg("created a new database in " + root)
	}}
	switch {
	case c.IsSet("retry"):
		set := s.FlagUnitValues()
		p, err := addunit.Retry(a.Base, c.String("retry"), set)
		if err != nil {
			return err
		}
		changed := make([]string, 0, len(set))
		for k := range set {
			changed = append(changed, k)
		}
		sort.Strings(changed)
		log.Info().Str("unit", c.String("retry")).Str("file", p).Strs("changed", changed).Msg("unit moved back to units/ for another try")
	case c.IsSet("from-csv"):
		n, err := a.AddCSV(c.String("from-csv"))
		if err != nil {
			return err
		}
		log.Info().Int("units", n).Msg(fmt.Sprintf("added %d units from %s", n, c.String("from-csv")))
	default:
		p, err := a.Add(c.Args().First())
		if err != nil {
			return err
		}
		log.Info().Str("unit", c.Args().First()).Str("file", p).Msg("unit added")
	}
	return nil
}
