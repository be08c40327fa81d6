package stage1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/s2config"
)

// ErrUsage marks bad flags or a bad config file (exit code 2).
var ErrUsage = errors.New("bad settings")

// Config is balena-migrate.conf after defaults and flags. Paths are absolute.
type Config struct {
	HomeDir      string
	ImageName    string
	BackupScript string
	BackupDirs   []string
	BalenaConfig string
	BalenaWifi   bool
	Debug        bool
	Reboot       int // seconds; -1: do not reboot

	GrubInstall                       bool
	GrubBootDev                       string
	GrubCfg, GrubBootImg, GrubCoreImg string

	HasWifiCfg, MigrateAllWifis bool
	MigrateWifiCfg              string
	CopyNmgrFiles               []string
	RequireNmgrFile             bool

	LogDrive, LogFSType string
	NoFlash, NoSetup    bool
	TermExit            string

	MemMinFreeS1, MemMinFreeS2, MinRootAvail int64
	MaxBadblocks                             string
	MinWriteSpeed                            int64 // KiB/s, 0: no check

	APIHost, VPNHost string
	APIPort, VPNPort int
	ConnectTimeout   time.Duration
}

// Flags are the command-line settings; a nil/empty field was not given.
type Flags struct {
	ConfigFile string // -c; default balena-migrate.conf
	Home       string
	Reboot     *int
	BalenaCfg  string
	BadBlocks  string
	WriteSpeed *int64
	Pretend    bool
}

func defaults() Config {
	return Config{
		BackupDirs: []string{"/etc"}, BalenaWifi: true, Reboot: -1, GrubBootDev: "hd0",
		NoFlash: true, TermExit: "exit 0",
		MemMinFreeS1: 64 << 20, MemMinFreeS2: 32 << 20, MinRootAvail: 64 << 20,
		APIHost: "api.balena-cloud.com", APIPort: 443, VPNHost: "vpn.balena-cloud.com", VPNPort: 443,
		ConnectTimeout: 20 * time.Second,
	}
}

// LoadConfig finds and reads the config file, applies defaults and flags.
// cwd is the current directory; relative paths in the result are resolved.
func LoadConfig(fl Flags, cwd string) (Config, error) {
	home := cwd
	if fl.Home != "" {
		home = absIn(cwd, fl.Home)
	}
	name := fl.ConfigFile
	if name == "" {
		name = "balena-migrate.conf"
	}
	path, err := findConfig(name, home, cwd)
	if err != nil {
		return Config{}, err
	}
	f, err := envfile.Read(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: config file %s: %w", ErrUsage, path, err)
	}
	if fl.Home == "" {
		if h, ok := f.Get("HOME_DIR"); ok && h != "" {
			home = absIn(filepath.Dir(path), h)
		}
	}
	c := defaults()
	c.HomeDir = filepath.Clean(home)
	if err := c.apply(f); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %w", ErrUsage, path, err)
	}
	if err := c.applyFlags(fl); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if c.ImageName == "" {
		return Config{}, fmt.Errorf("%w: IMAGE_NAME is not set: name the balenaOS image (.img.gz or .zip in %s) in %s", ErrUsage, c.HomeDir, path)
	}
	return c, nil
}

func findConfig(name, home, cwd string) (string, error) {
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%w: config file %s: %w", ErrUsage, name, err)
		}
		return name, nil
	}
	for _, dir := range []string{home, cwd} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: config file %s not found in %s or %s: create it (IMAGE_NAME=... at least) or pass -c FILE", ErrUsage, name, home, cwd)
}

func absIn(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

func (c *Config) home(p string) string {
	if p == "" {
		return ""
	}
	return absIn(c.HomeDir, p)
}

func (c *Config) apply(f *envfile.File) error {
	var errs []error
	str := func(key string, dst *string, isPath bool) {
		if v, ok := f.Get(key); ok {
			*dst = v
			if isPath {
				*dst = c.home(v)
			}
		}
	}
	boolean := func(key string, dst *bool) {
		if v, ok := f.Get(key); ok {
			*dst = strings.EqualFold(strings.TrimSpace(v), "TRUE")
		}
	}
	size := func(key string, dst *int64) {
		if v, ok := f.Get(key); ok && v != "" {
			n, err := s2config.ParseSize(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			*dst = n
		}
	}
	integer := func(key string, dst *int, empty int) {
		if v, ok := f.Get(key); ok {
			if strings.TrimSpace(v) == "" {
				*dst = empty
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a whole number of seconds or a port", key, v))
			}
			*dst = n
		}
	}
	str("IMAGE_NAME", &c.ImageName, true)
	str("BACKUP_SCRIPT", &c.BackupScript, true)
	if v, ok := f.Get("BACKUP_DIRECTORIES"); ok {
		c.BackupDirs = strings.Fields(v)
	}
	str("BALENA_CONFIG", &c.BalenaConfig, true)
	boolean("BALENA_WIFI", &c.BalenaWifi)
	boolean("DEBUG", &c.Debug)
	integer("DO_REBOOT", &c.Reboot, -1)
	boolean("GRUB_INSTALL", &c.GrubInstall)
	str("GRUB_BOOT_DEV", &c.GrubBootDev, false)
	str("GRUB_CFG", &c.GrubCfg, true)
	str("GRUB_BOOT_IMG", &c.GrubBootImg, true)
	str("GRUB_CORE_IMG", &c.GrubCoreImg, true)
	boolean("HAS_WIFI_CFG", &c.HasWifiCfg)
	boolean("MIGRATE_ALL_WIFIS", &c.MigrateAllWifis)
	str("MIGRATE_WIFI_CFG", &c.MigrateWifiCfg, true)
	if v, ok := f.Get("COPY_NMGR_FILES"); ok {
		c.CopyNmgrFiles = nil
		for _, n := range strings.Fields(v) {
			c.CopyNmgrFiles = append(c.CopyNmgrFiles, c.home(n))
		}
	}
	boolean("REQUIRE_NMGR_FILE", &c.RequireNmgrFile)
	str("LOG_DRIVE", &c.LogDrive, false)
	str("LOG_FS_TYPE", &c.LogFSType, false)
	boolean("NO_FLASH", &c.NoFlash)
	boolean("NO_SETUP", &c.NoSetup)
	str("TERM_EXIT", &c.TermExit, false)
	size("MEM_MIN_FREE_S1", &c.MemMinFreeS1)
	size("MEM_MIN_FREE_S2", &c.MemMinFreeS2)
	size("MIN_ROOT_AVAIL", &c.MinRootAvail)
	str("MAX_BADBLOCKS", &c.MaxBadblocks, false)
	if v, ok := f.Get("MIN_WRITE_SPEED"); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("MIN_WRITE_SPEED: %q is not KiB/s", v))
		}
		c.MinWriteSpeed = n
	}
	str("BALENA_API_HOST", &c.APIHost, false)
	str("BALENA_VPN_HOST", &c.VPNHost, false)
	integer("BALENA_API_PORT", &c.APIPort, 443)
	integer("BALENA_VPN_PORT", &c.VPNPort, 443)
	secs := int(c.ConnectTimeout / time.Second)
	integer("BALENA_CONNECT_TIMEOUT", &secs, 20)
	c.ConnectTimeout = time.Duration(secs) * time.Second
	errs = append(errs, c.validate())
	return errors.Join(errs...)
}

func (c *Config) validate() error {
	var errs []error
	if c.MaxBadblocks != "" {
		if _, _, err := s2config.ParseBadblocks(c.MaxBadblocks); err != nil {
			errs = append(errs, fmt.Errorf("MAX_BADBLOCKS: %w", err))
		}
	}
	if _, err := s2config.ParseTermExit(c.TermExit); err != nil {
		errs = append(errs, fmt.Errorf("TERM_EXIT: %w", err))
	}
	if c.GrubInstall && c.GrubCfg == "" {
		errs = append(errs, errors.New("GRUB_INSTALL=TRUE needs GRUB_CFG: extract grub.cfg from the flasher image with `balena-migrate extract`"))
	}
	return errors.Join(errs...)
}

func (c *Config) applyFlags(fl Flags) error {
	if fl.Reboot != nil {
		if *fl.Reboot < 0 {
			return fmt.Errorf("--reboot %d: give the seconds to wait before rebooting", *fl.Reboot)
		}
		c.Reboot = *fl.Reboot
	}
	if fl.BalenaCfg != "" {
		c.BalenaConfig = c.home(fl.BalenaCfg)
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
	return c.validate()
}
