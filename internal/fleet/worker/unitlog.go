package worker

import (
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/fleet/logging"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// openUnitLog opens the unit's log in db/log, recording its absolute path
// in UNIT_OUTPUT_LOG the first time (the caller saves the unit), so a
// worker started from another directory finds it.
func openUnitLog(db *spool.DB, c *spool.Claim, u *unit.Unit, binary string) (*logging.UnitLog, error) {
	p := u.Get(unit.FieldOutputLog)
	if p == "" {
		var err error
		if p, err = filepath.Abs(db.Path(spool.Log, spool.FileName(spool.Log, c.ID(), c.Tag()))); err != nil {
			return nil, err
		}
		if err := u.Set(unit.FieldOutputLog, p); err != nil {
			return nil, err
		}
	}
	return logging.OpenUnitLog(p, binary)
}
