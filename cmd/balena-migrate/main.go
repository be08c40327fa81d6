// Command balena-migrate runs on the device: stage 1 (checks, backup, initramfs,
// boot setup), stage 2 inside the initramfs (`balena-migrate stage2`) and the
// flasher-image extractor (`balena-migrate extract`).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:     "balena-migrate",
		Usage:    "migrate this device to balenaOS",
		Commands: []*cli.Command{stage2Command(), extractCommand(), fetchCommand()},
		Action:   stage1Action,
		Flags:    stage1Flags(),
	}
	buildinfo.Setup(app, manual()...)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "balena-migrate:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode maps an error to the exit codes of docs/device-protocol.md: 2 for bad
// usage, 1 otherwise.
func exitCode(err error) int {
	var ec cli.ExitCoder
	switch {
	case usage.Is(err):
		return 2
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	return 1
}
