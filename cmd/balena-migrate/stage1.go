package main

import "github.com/urfave/cli/v2"

// Placeholder until stage 1 lands (issue 7).
func stage1Flags() []cli.Flag { return nil }

func stage1Action(*cli.Context) error {
	return cli.Exit("balena-migrate: stage 1 is not implemented yet", 1)
}
