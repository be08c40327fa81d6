package devproto

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/envfile"
)

// Conf is balena-migrate.conf (ConfName): the device's settings. Stage 1
// reads it, and so does migdb-migrate before it touches a device (for
// IMAGE_NAME and NO_FLASH), both through ReadConf, so the two never
// disagree about a key or its default. docs/device-config.md lists them.
//
// The file is KEY=VALUE in shell syntax; relative paths are taken in
// HOME_DIR. Values mean what they meant to the original tool: booleans are
// TRUE/FALSE (yes/no, 1/0; empty is FALSE) and anything else is refused;
// sizes are kB unless they end in K, M or G. Keys and defaults:
//
//	IMAGE_NAME              the balenaOS image, .img.gz or .zip (required by stage 1)
//	HOME_DIR                migration directory (stage 1: the current dir; --home)
//	BACKUP_SCRIPT           run with the archive path to write backup.tgz
//	BACKUP_DIRECTORIES      "/etc"; tarred into backup.tgz when no script
//	BALENA_CONFIG           config.json for resin-boot (--balena-cfg)
//	BALENA_WIFI             TRUE: the config.json wifiSsid/wifiKey becomes a wifi file
//	DEBUG                   TRUE: "debug" on the stage-2 kernel command line
//	DO_REBOOT               seconds to wait before rebooting after success (-r); TRUE: 5, FALSE: none
//	GRUB_INSTALL            TRUE: stage 2 installs grub (needs GRUB_CFG)
//	GRUB_BOOT_DEV           "hd0" (accepted; the menu entry finds /boot by UUID)
//	GRUB_CFG, GRUB_BOOT_IMG, GRUB_CORE_IMG  grub files from `balena-migrate extract`
//	HAS_WIFI_CFG            N wifi files the image has already (TRUE: 1); ours start at N+1
//	MIGRATE_ALL_WIFIS       TRUE: carry every Wi-Fi network; FALSE: those of a wireless link the device is reached through
//	MIGRATE_WIFI_CFG        file with one SSID per line: migrate only those
//	COPY_NMGR_FILES         NetworkManager files installed as they are
//	REQUIRE_NMGR_FILE       TRUE: refuse when no network file would be installed
//	NETWORK_CHECK           TRUE (default): refuse when a link the device is reached through would not come up on balenaOS
//	NETWORK_SKIP            interface names and NetworkManager connection UUIDs whose setup is left behind
//	LOG_DRIVE, LOG_FS_TYPE  separate drive for the stage-2 log, and its type (ext4)
//	NO_FLASH                TRUE (default, also when the key is left out): stage 2 stops before flashing
//	NO_SETUP                TRUE: leave the boot configuration alone (--pretend)
//	TERM_EXIT               "exit 0": what stage 2 does on failure ("exit N", "reboot", "reboot -f")
//	MEM_MIN_FREE_S1/S2      65536 / 65536 kB of RAM that must stay free in stage 2 (S2: measured, DefaultMemMinFreeS2)
//	MIN_ROOT_AVAIL          65536 kB that must stay free in HOME_DIR
//	MAX_BADBLOCKS           N or N% bad blocks stage 2 tolerates (--bad-blocks)
//	MIN_WRITE_SPEED         KiB/s the disk must write (--write-speed)
//	BALENA_API_HOST/PORT    api.balena-cloud.com:443, must be reachable (empty host: no check);
//	                        unset, the apiEndpoint/vpnEndpoint of BALENA_CONFIG (self-hosted balena) apply
//	BALENA_VPN_HOST/PORT    vpn.balena-cloud.com:443, probed and reported (empty host: not probed); unset, vpnEndpoint
//	BALENA_CONNECT_TIMEOUT  20 seconds per connection check
//	NO_OS_CHECK             TRUE: run on a system not in the supported list (--no-os-check)
//	WATCHDOG                300 seconds: the watchdog timeout of the stage-2 boot; 0: no watchdog
type Conf struct {
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

	HasWifiCfg      int // wifi files the image holds already
	MigrateAllWifis bool
	MigrateWifiCfg  string
	CopyNmgrFiles   []string
	RequireNmgrFile bool
	NetworkCheck    bool
	NetworkSkip     []string

	LogDrive, LogFSType string
	NoFlash, NoSetup    bool
	TermExit            string

	MemMinFreeS1, MemMinFreeS2, MinRootAvail int64
	MaxBadblocks                             string
	MinWriteSpeed                            int64 // KiB/s, 0: no check

	APIHost, VPNHost string
	APIPort, VPNPort int
	ConnectTimeout   time.Duration

	NoOSCheck bool

	Watchdog int // seconds; 0: no watchdog for the stage-2 boot
}

// DefaultMemMinFreeS2 is MEM_MIN_FREE_S2's default: the memory stage 2
// keeps free once image and files are in RAM. It is measured, not guessed
// (TestMemMinFreeCoversTheFlash in internal/device/stage2): the verify,
// flash and read-back of an image grow stage 2 by 29 to 37 MiB at the peak
// (four 4 MiB buffers per pipeline, gzip, the Go runtime; the spread is when
// the garbage collector runs); half again for the kernel's own needs while it
// writes (page tables, the block layer, page cache for writeback) is 56 MiB,
// rounded up to 64 MiB.
const DefaultMemMinFreeS2 = 64 << 20

// DefaultConf is the settings of an empty balena-migrate.conf.
func DefaultConf() Conf {
	return Conf{
		BackupDirs: []string{"/etc"}, BalenaWifi: true, Reboot: -1, GrubBootDev: "hd0",
		NoFlash: true, TermExit: "exit 0", LogFSType: "ext4",
		MemMinFreeS1: 64 << 20, MemMinFreeS2: DefaultMemMinFreeS2, MinRootAvail: 64 << 20,
		APIHost: "api.balena-cloud.com", APIPort: 443, VPNHost: "vpn.balena-cloud.com", VPNPort: 443,
		ConnectTimeout: 20 * time.Second, Watchdog: 300, NetworkCheck: true,
	}
}

// ReadConf reads the keys of f on top of the defaults. home is HOME_DIR,
// where relative paths are taken; "" leaves them as written (the fleet
// looks them up in the environment). The key HOME_DIR itself is where
// stage 1 finds home, not read here. Every key that does not parse is
// named in the error, and the settings are returned as far as they were
// read.
func ReadConf(f *envfile.File, home string) (Conf, error) {
	c := DefaultConf()
	if home != "" {
		c.HomeDir = filepath.Clean(home)
	}
	var errs []error
	for _, k := range c.keys() {
		if v, ok := f.Get(k.name); ok {
			if err := k.set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.name, err))
			}
		}
	}
	return c, errors.Join(errs...)
}

// InHome is path p of the settings: taken in HomeDir when relative, and
// as written when no home is known.
func (c *Conf) InHome(p string) string {
	switch {
	case p == "" || c.HomeDir == "":
		return p
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	}
	return filepath.Join(c.HomeDir, p)
}

// confKey binds a key to the field it sets.
type confKey struct {
	name string
	set  func(v string) error
}

// keys lists every key of balena-migrate.conf.
func (c *Conf) keys() []confKey {
	str := func(name string, dst *string) confKey {
		return confKey{name, func(v string) error { *dst = v; return nil }}
	}
	path := func(name string, dst *string) confKey {
		return confKey{name, func(v string) error { *dst = c.InHome(v); return nil }}
	}
	boolean := func(name string, dst *bool) confKey {
		return confKey{name, func(v string) error {
			b, err := ParseBool(v)
			if err == nil {
				*dst = b
			}
			return err
		}}
	}
	size := func(name string, dst *int64) confKey {
		return confKey{name, func(v string) (err error) {
			if strings.TrimSpace(v) != "" {
				*dst, err = parseKB(v)
			}
			return err
		}}
	}
	number := func(name string, dst *int, empty int) confKey {
		return confKey{name, func(v string) error { return parseCount(v, dst, empty) }}
	}
	def := DefaultConf()
	secs := int(c.ConnectTimeout / time.Second)
	return []confKey{
		path("IMAGE_NAME", &c.ImageName), path("BACKUP_SCRIPT", &c.BackupScript),
		{"BACKUP_DIRECTORIES", func(v string) error { c.BackupDirs = strings.Fields(v); return nil }},
		path("BALENA_CONFIG", &c.BalenaConfig), boolean("BALENA_WIFI", &c.BalenaWifi),
		boolean("DEBUG", &c.Debug), {"DO_REBOOT", func(v string) (err error) { c.Reboot, err = parseReboot(v); return err }},
		boolean("GRUB_INSTALL", &c.GrubInstall), str("GRUB_BOOT_DEV", &c.GrubBootDev),
		path("GRUB_CFG", &c.GrubCfg), path("GRUB_BOOT_IMG", &c.GrubBootImg), path("GRUB_CORE_IMG", &c.GrubCoreImg),
		{"HAS_WIFI_CFG", func(v string) (err error) { c.HasWifiCfg, err = parseWifiCount(v); return err }},
		boolean("MIGRATE_ALL_WIFIS", &c.MigrateAllWifis),
		path("MIGRATE_WIFI_CFG", &c.MigrateWifiCfg),
		{"COPY_NMGR_FILES", func(v string) error {
			c.CopyNmgrFiles = nil
			for _, n := range strings.Fields(v) {
				c.CopyNmgrFiles = append(c.CopyNmgrFiles, c.InHome(n))
			}
			return nil
		}},
		boolean("REQUIRE_NMGR_FILE", &c.RequireNmgrFile),
		boolean("NETWORK_CHECK", &c.NetworkCheck),
		{"NETWORK_SKIP", func(v string) error { c.NetworkSkip = strings.Fields(v); return nil }},
		str("LOG_DRIVE", &c.LogDrive),
		{"LOG_FS_TYPE", func(v string) error {
			if c.LogFSType = strings.TrimSpace(v); c.LogFSType == "" {
				c.LogFSType = def.LogFSType
			}
			return nil
		}},
		boolean("NO_FLASH", &c.NoFlash), boolean("NO_SETUP", &c.NoSetup), str("TERM_EXIT", &c.TermExit),
		size("MEM_MIN_FREE_S1", &c.MemMinFreeS1), size("MEM_MIN_FREE_S2", &c.MemMinFreeS2),
		size("MIN_ROOT_AVAIL", &c.MinRootAvail), str("MAX_BADBLOCKS", &c.MaxBadblocks),
		{"MIN_WRITE_SPEED", func(v string) error {
			n := 0
			err := parseCount(v, &n, 0)
			c.MinWriteSpeed = int64(n)
			return err
		}},
		boolean("NO_OS_CHECK", &c.NoOSCheck), number("WATCHDOG", &c.Watchdog, def.Watchdog),
		str("BALENA_API_HOST", &c.APIHost), number("BALENA_API_PORT", &c.APIPort, def.APIPort),
		str("BALENA_VPN_HOST", &c.VPNHost), number("BALENA_VPN_PORT", &c.VPNPort, def.VPNPort),
		{"BALENA_CONNECT_TIMEOUT", func(v string) error {
			err := parseCount(v, &secs, int(def.ConnectTimeout/time.Second))
			c.ConnectTimeout = time.Duration(secs) * time.Second
			return err
		}},
	}
}

// ParseBool reads a boolean the way the original tool's config files
// write them: TRUE/FALSE, also yes/no and 1/0 in any case; empty is FALSE
// (the original's `KEY= # "TRUE"` lines). Anything else is an error rather
// than false, so that NO_FLASH=on never means "flash".
func ParseBool(v string) (bool, error) {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "TRUE", "YES", "1":
		return true, nil
	case "", "FALSE", "NO", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean: write TRUE or FALSE (yes/no and 1/0 work too)", v)
}

// ParseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024).
func ParseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	shift := 0
	switch {
	case strings.HasSuffix(s, "K"):
		shift = 10
	case strings.HasSuffix(s, "M"):
		shift = 20
	case strings.HasSuffix(s, "G"):
		shift = 30
	}
	if shift > 0 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size like 33554432, 32768K or 32M", v)
	}
	return n << shift, nil
}

// parseKB reads a size in kB, as the original tool's MEM_MIN_FREE_S1/S2 and
// MIN_ROOT_AVAIL were (65536 is 64 MiB); a K, M or G suffix is also taken.
func parseKB(v string) (int64, error) {
	s := strings.TrimSpace(v)
	if s != "" && s[len(s)-1] >= '0' && s[len(s)-1] <= '9' {
		s += "K"
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size in kB (like 65536) or with a unit (64M)", v)
	}
	return n, nil
}

// parseReboot reads DO_REBOOT: seconds, or the original's older TRUE (a
// reboot after 5 seconds) and FALSE/empty (no reboot).
func parseReboot(v string) (int, error) {
	n := 0
	if err := parseCount(v, &n, -1); err == nil {
		return n, nil
	}
	if b, err := ParseBool(v); err == nil {
		if b {
			return 5, nil
		}
		return -1, nil
	}
	return 0, fmt.Errorf("%q is neither seconds nor TRUE/FALSE: write DO_REBOOT=10 to reboot 10 seconds after success, or leave it empty", v)
}

// parseWifiCount reads HAS_WIFI_CFG: how many resin-wifi files the image
// has already; TRUE is one, FALSE/empty none.
func parseWifiCount(v string) (int, error) {
	n := 0
	if err := parseCount(v, &n, 0); err == nil {
		return n, nil
	}
	if b, err := ParseBool(v); err == nil {
		if b {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%q is neither a number of wifi files nor TRUE/FALSE", v)
}

// parseCount reads a whole non-negative number; empty means the default.
func parseCount(v string, dst *int, empty int) error {
	v = strings.TrimSpace(v)
	if v == "" {
		*dst = empty
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}
