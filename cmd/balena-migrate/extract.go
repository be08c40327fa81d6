package main

import (
	"fmt"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/urfave/cli/v2"

	"github.com/fleetmig/balena-migrate/internal/device/extract"
)

// extractCommand is `balena-migrate extract` (docs/device.md, extract).
func extractCommand() *cli.Command {
	return &cli.Command{
		Name:      "extract",
		Usage:     "pull the balenaOS image and grub files out of an x86 flasher image",
		ArgsUsage: "FLASHER.img|FLASHER.zip",
		Description: "Reads the flasher image without mounting it (no root needed), writes the balenaOS image\n" +
			"gzip-compressed to --img and the grub files where asked, and sets IMAGE_NAME, GRUB_CFG,\n" +
			"GRUB_BOOT_IMG, GRUB_CORE_IMG and BALENA_CONFIG in the migrate config given with --config.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "img", Usage: "write the balenaOS image (gzip) to `OUT.img.gz`"},
			&cli.StringFlag{Name: "grub", Usage: "write the grub.cfg for the installed system to `FILE`"},
			&cli.StringFlag{Name: "grub-boot", Usage: "write grub's boot.img (MBR sector) to `FILE`"},
			&cli.StringFlag{Name: "grub-core", Usage: "write grub's core.img to `FILE`"},
			&cli.StringFlag{Name: "balena-cfg", Usage: "record `config.json` as BALENA_CONFIG in the migrate config"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "migrate config `FILE` to create or update"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 || c.String("img") == "" {
				return usage.Errorf("extract needs --img OUT.img.gz and exactly one flasher image (.img or .zip); see --help")
			}
			logf := func(format string, args ...any) {
				fmt.Fprint(os.Stdout, devproto.Line(time.Now(), devproto.Info, fmt.Sprintf(format, args...)))
			}
			_, err := extract.Run(c.Context, extract.Options{Flasher: c.Args().First(), Image: c.String("img"),
				GrubCfg: c.String("grub"), GrubBoot: c.String("grub-boot"), GrubCore: c.String("grub-core"),
				BalenaCfg: c.String("balena-cfg"), Config: c.String("config"), Log: logf})
			if err != nil {
				return fmt.Errorf("extract: %w", err)
			}
			return nil
		},
	}
}
