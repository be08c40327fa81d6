package worker

import (
	"github.com/fleetmig/balena-migrate/internal/logging"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
)

// OpenUnitLog opens the unit's log in db/log, recording its path in
// UNIT_OUTPUT_LOG the first time (the caller saves the unit).
func OpenUnitLog(db *spool.DB, c *spool.Claim, u *unit.Unit, binary string) (*logging.UnitLog, error) {
	p := u.Get(unit.FieldOutputLog)
	if p == "" {
		p = db.Path(spool.Log, spool.FileName(spool.Log, c.ID(), c.Tag()))
		if err := u.Set(unit.FieldOutputLog, p); err != nil {
			return nil, err
		}
	}
	return logging.OpenUnitLog(p, binary)
}
