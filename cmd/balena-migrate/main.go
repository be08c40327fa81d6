// Command balena-migrate runs on the device: stage 1 (checks, backup, initramfs,
// boot setup), stage 2 inside the initramfs (`balena-migrate stage2`) and the
// flasher-image extractor (`balena-migrate extract`).
package main

import (
	"fmt"
	"os"

	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
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
	// Subcommands return errors; the exit code comes from exitcode.Of alone.
	app.ExitErrHandler = func(*cli.Context, error) {}
	buildinfo.Setup(app, manual()...)
	err := app.Run(os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "balena-migrate:", err)
	}
	os.Exit(exitcode.Of(err))
}
