package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/device/stage2"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// stage2Command is `balena-migrate stage2`, run by the initramfs local-bottom
// script once the old root is mounted (docs/device.md, stage 2).
func stage2Command() *cli.Command {
	return &cli.Command{
		Name:  "stage2",
		Usage: "flash balenaOS from inside the initramfs",
		Description: "Reads the stage-2 config written by stage 1, copies the image and files into RAM, verifies\n" +
			"the image, unmounts the old root, flashes balenaOS, places config.json, network files,\n" +
			"backup and log on the new partitions and reboots.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: s2config.DefaultPath, Usage: "stage-2 config `FILE`"},
			&cli.BoolFlag{Name: "no-reboot", Usage: "never reboot or power off; exit with the result instead"},
			&cli.StringFlag{Name: stage2.FeederFlag, Hidden: true, Usage: "the init-top step's watchdog feeder: EVERY,FOR; the watchdog is descriptor 3"},
			&cli.BoolFlag{Name: "early", Usage: "only the first step of the stage-2 boot (the initramfs init-top script): start the watchdog (WATCHDOG) and put back the boot files stage 1 changed"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usage.Errorf("stage2 takes no arguments; use --config FILE")
			}
			if spec := c.String(stage2.FeederFlag); spec != "" {
				if err := stage2.RunFeeder(c.Context, spec, os.Stdout); err != nil {
					return cli.Exit(err.Error(), 1)
				}
				return nil
			}
			cfg, err := s2config.Load(c.String("config"))
			if err != nil {
				return usage.Errorf("%w\nfix the stage-2 config (stage 1 writes it) and retry", err)
			}
			if c.Bool("early") {
				stage2.Early(c.Context, cfg, os.Stdout)
				return nil
			}
			if err := stage2.Run(c.Context, cfg, stage2.Options{NoReboot: c.Bool("no-reboot"), Console: os.Stdout}); err != nil {
				return fmt.Errorf("stage 2 did not complete (%w); see the log above", err)
			}
			return nil
		},
	}
}
