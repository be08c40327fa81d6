package main

import "github.com/urfave/cli/v2"

// Placeholder until extract lands (issue 8).
func extractCommand() *cli.Command {
	return &cli.Command{
		Name:  "extract",
		Usage: "pull the balenaOS image and grub files out of an x86 flasher image",
		Action: func(*cli.Context) error {
			return cli.Exit("balena-migrate extract: not implemented yet", 1)
		},
	}
}
