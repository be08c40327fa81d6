package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/urfave/cli/v2"

	"github.com/fleetmig/balena-migrate/internal/device/stage1"
)

func stage1Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: devproto.ConfName, Usage: "config `FILE`, looked up in the home dir, then the current dir"},
		&cli.StringFlag{Name: "home", Usage: "migration `DIR` holding the image and config (HOME_DIR; default: current dir)"},
		&cli.IntFlag{Name: "reboot", Aliases: []string{"r"}, Usage: "reboot `SECONDS` after success (DO_REBOOT)"},
		&cli.StringFlag{Name: "balena-cfg", Usage: "config.json `FILE` for the new system (BALENA_CONFIG)"},
		&cli.StringFlag{Name: "bad-blocks", Usage: "fail stage 2 when more than `N[%]` blocks are bad (MAX_BADBLOCKS)"},
		&cli.Int64Flag{Name: "write-speed", Usage: "minimum disk write speed in `KB/s` (MIN_WRITE_SPEED)"},
		&cli.BoolFlag{Name: "pretend", Usage: "do everything but change the boot setup and flash (NO_SETUP=TRUE NO_FLASH=TRUE)"},
		&cli.BoolFlag{Name: "no-os-check", EnvVars: []string{"NO_OS_CHECK"}, Usage: "run on an initramfs-tools based system that is not in the supported list (NO_OS_CHECK)"},
	}
}

// stage1Action runs stage 1. Every failure ends stdout with the one
// machine-readable line stage1.Log.Failed prints (the fleet worker's verdict).
func stage1Action(c *cli.Context) error {
	log := &stage1.Log{W: os.Stdout}
	err := runStage1(c, log)
	if err != nil {
		log.Failed(err)
		return fmt.Errorf("migration failed: %w", err)
	}
	return nil
}

func runStage1(c *cli.Context, log *stage1.Log) error {
	if c.NArg() > 0 {
		return usage.Errorf("unexpected argument %q: see balena-migrate -h", c.Args().First())
	}
	fl := stage1.Flags{
		ConfigFile: c.String("config"), Home: c.String("home"),
		BalenaCfg: c.String("balena-cfg"), BadBlocks: c.String("bad-blocks"), Pretend: c.Bool("pretend"),
		NoOSCheck: c.Bool("no-os-check"),
	}
	if c.IsSet("reboot") {
		n := c.Int("reboot")
		fl.Reboot = &n
	}
	if c.IsSet("write-speed") {
		n := c.Int64("write-speed")
		fl.WriteSpeed = &n
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("current directory: %w", err)
	}
	cfg, err := stage1.LoadConfig(fl, cwd)
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.EvalSymlinks(bin)
	}
	if err != nil {
		return fmt.Errorf("cannot find the balena-migrate binary: %w", err)
	}
	// SIGHUP and SIGPIPE mean the SSH session that started us is gone: stop
	// and undo like for SIGTERM, rather than die half-way (Go would exit on
	// a write to a broken stdout) or carry on unobserved.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	return finish(ctx, log, cfg, bin)
}

func finish(ctx context.Context, log *stage1.Log, cfg stage1.Config, bin string) error {
	if os.Getuid() == 0 {
		release, err := stage1.Lock("/run/balena-migrate.lock")
		if err != nil {
			return err
		}
		defer release()
	}
	res, err := stage1.Run(ctx, stage1.Options{Config: cfg, Host: stage1.OSHost{}, Log: log, Binary: bin})
	if err != nil {
		return err
	}
	if res.RebootIn >= 0 {
		if err := stage1.ScheduleReboot(res.RebootIn, res.Reboot); err != nil {
			log.Warn("%v", err)
		} else {
			fmt.Println(devproto.Success{RebootIn: res.RebootIn}.Format())
			return nil
		}
	}
	if res.RebootArg != "" {
		// A plain reboot would boot the old system; the fleet worker reads
		// the argument from the success line.
		log.Info("boot stage 2 with: %s", res.Reboot)
	}
	fmt.Println(devproto.Success{AskReboot: true, RebootArg: res.RebootArg}.Format())
	return nil
}
