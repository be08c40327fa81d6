package stage1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Config is balena-migrate.conf after defaults and flags, read by
// devproto (the fleet worker reads it the same way). Paths are absolute.
type Config = devproto.Conf

// Flags are the command-line settings; a nil/empty field was not given.
type Flags struct {
	ConfigFile string // -c; default balena-migrate.conf
	Home       string
	Reboot     *int
	BalenaCfg  string
	BadBlocks  string
	WriteSpeed *int64
	Pretend    bool
	NoOSCheck  bool
}

func defaults() Config { return devproto.DefaultConf() }

// LoadConfig finds and reads the config file, applies defaults and flags.
// cwd is the current directory; relative paths in the result are resolved.
func LoadConfig(fl Flags, cwd string) (Config, error) {
	home := cwd
	if fl.Home != "" {
		home = absIn(cwd, fl.Home)
	}
	name := fl.ConfigFile
	if name == "" {
		name = devproto.ConfName
	}
	path, err := findConfig(name, home, cwd)
	if err != nil {
		return Config{}, err
	}
	f, err := envfile.Read(path)
	if err != nil {
		return Config{}, usage.Errorf("config file %s: %w", path, err)
	}
	if fl.Home == "" {
		if h, ok := f.Get("HOME_DIR"); ok && h != "" {
			home = absIn(filepath.Dir(path), h)
		}
	}
	c, err := devproto.ReadConf(f, home)
	if err := errors.Join(err, validate(&c)); err != nil {
		return Config{}, usage.Errorf("%s: %w", path, err)
	}
	if err := applyFlags(&c, fl); err != nil {
		return Config{}, usage.Errorf("%w", err)
	}
	if c.ImageName == "" {
		return Config{}, usage.Errorf("IMAGE_NAME is not set: name the balenaOS image (.img.gz or .zip in %s) in %s", c.HomeDir, path)
	}
	return c, nil
}

func findConfig(name, home, cwd string) (string, error) {
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return "", usage.Errorf("config file %s: %w", name, err)
		}
		return name, nil
	}
	dirs := []string{home}
	if cwd != home {
		dirs = append(dirs, cwd)
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", usage.Errorf("config file %s not found in %s: create it (IMAGE_NAME=... at least) or pass -c FILE", name, strings.Join(dirs, " or "))
}

func absIn(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// validate refuses values stage 2 could not act on.
func validate(c *Config) error {
	var errs []error
	if c.MaxBadblocks != "" {
		if _, _, err := s2config.ParseBadblocks(c.MaxBadblocks); err != nil {
			errs = append(errs, fmt.Errorf("MAX_BADBLOCKS: %w", err))
		}
	}
	if _, err := s2config.ParseTermExit(c.TermExit); err != nil {
		errs = append(errs, fmt.Errorf("TERM_EXIT: %w", err))
	}
	if c.Watchdog != 0 && (c.Watchdog < s2config.MinWatchdog || c.Watchdog > s2config.MaxWatchdog) {
		errs = append(errs, fmt.Errorf("WATCHDOG=%d: write 0 (no watchdog) or a timeout of %d..%d seconds; it must cover the initramfs from its start to stage 2 (300 is the default)",
			c.Watchdog, s2config.MinWatchdog, s2config.MaxWatchdog))
	}
	if c.GrubInstall && c.GrubCfg == "" {
		errs = append(errs, errors.New("GRUB_INSTALL=TRUE needs GRUB_CFG: extract grub.cfg from the flasher image with `balena-migrate extract`"))
	}
	return errors.Join(errs...)
}

func applyFlags(c *Config, fl Flags) error {
	if fl.Reboot != nil {
		if *fl.Reboot < 0 {
			return fmt.Errorf("--reboot %d: give the seconds to wait before rebooting", *fl.Reboot)
		}
		c.Reboot = *fl.Reboot
	}
	if fl.BalenaCfg != "" {
		c.BalenaConfig = c.InHome(fl.BalenaCfg)
	}
	if fl.BadBlocks != "" {
		c.MaxBadblocks = fl.BadBlocks
	}
	if fl.WriteSpeed != nil {
		if *fl.WriteSpeed < 0 {
			return fmt.Errorf("--write-speed %d: give KiB/s", *fl.WriteSpeed)
		}
		c.MinWriteSpeed = *fl.WriteSpeed
	}
	if fl.Pretend {
		c.NoSetup, c.NoFlash = true, true
	}
	if fl.NoOSCheck {
		c.NoOSCheck = true
	}
	return validate(c)
}
