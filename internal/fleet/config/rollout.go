package config

import (
	"fmt"
	"net"

	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
)

// The checks of the rollout settings: rollout's own parsers, so a value
// the worker would refuse is refused here, before any unit is touched.

func checkWaves(raw string) error {
	_, err := rollout.ParseWaves(raw)
	return err
}

func checkMaxFail(raw string) error {
	_, err := rollout.ParseMaxFail(raw)
	return err
}

func checkWindow(raw string) error {
	_, err := rollout.ParseWindow(raw)
	return err
}

func checkZone(raw string) error {
	_, err := rollout.ParseZone(raw)
	return err
}

func checkAddr(raw string) error {
	if _, _, err := net.SplitHostPort(raw); err != nil {
		return fmt.Errorf("%q is not an address like 127.0.0.1:9110 or :9110", raw)
	}
	return nil
}

func checkGroup(raw string) error { return rollout.CheckGroup(raw) }
