package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/fetch"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/urfave/cli/v2"
)

// fetchCommand is `balena-migrate fetch`: the device downloads the image
// itself (migdb-migrate runs it when MIG_IMAGE_URL is set).
func fetchCommand() *cli.Command {
	return &cli.Command{
		Name:  "fetch",
		Usage: "download the balenaOS image from a URL, resuming a cut-off download, and keep it only if its SHA-256 matches",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Required: true, Usage: "where the image is served (http or https)"},
			&cli.StringFlag{Name: "sha256", Required: true, Usage: "the SHA-256 of the file as served (hex)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "`FILE` to write (FILE.part while downloading)"},
			&cli.IntFlag{Name: "tries", Value: 5, Usage: "attempts, each resuming where the last stopped"},
		},
		Action: func(c *cli.Context) error {
			say := func(level devproto.Level, format string, a ...any) {
				fmt.Fprint(os.Stdout, devproto.Line(time.Now(), level, fmt.Sprintf(format, a...)))
			}
			start := time.Now()
			res, err := fetch.Run(c.Context, fetch.Options{URL: c.String("url"), SHA256: c.String("sha256"), Out: c.String("out"),
				Tries: c.Int("tries"), Log: func(format string, a ...any) { say(devproto.Info, format, a...) }})
			if err != nil {
				say(devproto.Error, "%s", devproto.NewFailure(devproto.ClassTransfer, fmt.Sprintf("fetching %s: %v", c.String("url"), err)).Format())
				return errors.New("fetch failed")
			}
			if !res.Already {
				say(devproto.Info, "fetched %s: %.1f MB in %v (%.1f MB kept from an earlier try), SHA-256 verified",
					c.String("out"), float64(res.Bytes)/1e6, time.Since(start).Round(time.Millisecond), float64(res.Resumed)/1e6)
			}
			return nil
		},
	}
}
