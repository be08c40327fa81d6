package main

import "github.com/urfave/cli/v2"

// Placeholder until stage 2 lands (issue 8).
func stage2Command() *cli.Command {
	return &cli.Command{
		Name:  "stage2",
		Usage: "flash balenaOS from inside the initramfs",
		Action: func(*cli.Context) error {
			return cli.Exit("balena-migrate stage2: not implemented yet", 1)
		},
	}
}
