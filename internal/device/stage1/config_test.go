package stage1

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

func writeConf(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaultsAndKeys(t *testing.T) {
	home := t.TempDir()
	writeConf(t, home, "balena-migrate.conf", `IMAGE_NAME=img.gz
BACKUP_DIRECTORIES="/etc /home/pi/data"
BALENA_CONFIG=config.json
DO_REBOOT=10
MIGRATE_WIFI_CFG=wifis
COPY_NMGR_FILES="eth0 /etc/NetworkManager/system-connections/x"
REQUIRE_NMGR_FILE=true
NO_FLASH=FALSE
TERM_EXIT="reboot -f"
MEM_MIN_FREE_S1=128M
MAX_BADBLOCKS=2%
BALENA_API_HOST=
BALENA_VPN_PORT=1723
BALENA_CONNECT_TIMEOUT=5
NO_OS_CHECK=TRUE
`)
	c, err := LoadConfig(Flags{}, home)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.HomeDir = home
	want.ImageName = filepath.Join(home, "img.gz")
	want.BackupDirs = []string{"/etc", "/home/pi/data"}
	want.BalenaConfig = filepath.Join(home, "config.json")
	want.Reboot = 10
	want.MigrateWifiCfg = filepath.Join(home, "wifis")
	want.CopyNmgrFiles = []string{filepath.Join(home, "eth0"), "/etc/NetworkManager/system-connections/x"}
	want.RequireNmgrFile = true
	want.NoFlash = false
	want.TermExit = "reboot -f"
	want.MemMinFreeS1 = 128 << 20
	want.MaxBadblocks = "2%"
	want.APIHost = ""
	want.VPNPort = 1723
	want.ConnectTimeout = 5 * time.Second
	want.NoOSCheck = true
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestLoadConfigLookupAndFlags(t *testing.T) {
	cwd, home := t.TempDir(), t.TempDir()
	writeConf(t, cwd, "balena-migrate.conf", "IMAGE_NAME=from-cwd.img.gz\nDO_REBOOT=5\n")
	// not in the home dir: found in the current dir
	c, err := LoadConfig(Flags{Home: home}, cwd)
	if err != nil || c.ImageName != filepath.Join(home, "from-cwd.img.gz") || c.Reboot != 5 {
		t.Fatalf("%+v %v", c, err)
	}
	// the home dir wins, flags beat the file
	writeConf(t, home, "balena-migrate.conf", "IMAGE_NAME=from-home.img.gz\nDO_REBOOT=5\nNO_SETUP=FALSE\n")
	zero, speed := 0, int64(2048)
	c, err = LoadConfig(Flags{Home: home, Reboot: &zero, BalenaCfg: "cfg.json", BadBlocks: "7", WriteSpeed: &speed, Pretend: true, NoOSCheck: true}, cwd)
	if err != nil || c.ImageName != filepath.Join(home, "from-home.img.gz") || c.Reboot != 0 ||
		c.BalenaConfig != filepath.Join(home, "cfg.json") || c.MaxBadblocks != "7" || c.MinWriteSpeed != 2048 || !c.NoSetup || !c.NoFlash || !c.NoOSCheck {
		t.Fatalf("%+v %v", c, err)
	}
	// HOME_DIR in the file, relative to the file
	writeConf(t, cwd, "other.conf", "HOME_DIR=sub\nIMAGE_NAME=x.img.gz\n")
	c, err = LoadConfig(Flags{ConfigFile: "other.conf"}, cwd)
	if err != nil || c.HomeDir != filepath.Join(cwd, "sub") || c.ImageName != filepath.Join(cwd, "sub", "x.img.gz") {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct{ body, words string }{
		"no image":         {"DEBUG=TRUE\n", "IMAGE_NAME is not set"},
		"bad TERM_EXIT":    {"IMAGE_NAME=x\nTERM_EXIT=halt\n", "TERM_EXIT"},
		"bad size":         {"IMAGE_NAME=x\nMEM_MIN_FREE_S2=lots\n", "MEM_MIN_FREE_S2"},
		"bad reboot":       {"IMAGE_NAME=x\nDO_REBOOT=soon\n", "DO_REBOOT"},
		"bad badblocks":    {"IMAGE_NAME=x\nMAX_BADBLOCKS=many\n", "MAX_BADBLOCKS"},
		"grub without cfg": {"IMAGE_NAME=x\nGRUB_INSTALL=TRUE\n", "GRUB_CFG"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeConf(t, dir, "balena-migrate.conf", tc.body)
			_, err := LoadConfig(Flags{}, dir)
			if !usage.Is(err) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("want ErrUsage naming %s, got %v", tc.words, err)
			}
		})
	}
	_, err := LoadConfig(Flags{}, t.TempDir())
	if !usage.Is(err) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing config: %v", err)
	}
	neg := -1
	writeConf(t, t.TempDir(), "x", "")
	dir := t.TempDir()
	writeConf(t, dir, "balena-migrate.conf", "IMAGE_NAME=x\n")
	if _, err := LoadConfig(Flags{Reboot: &neg}, dir); !usage.Is(err) {
		t.Fatalf("--reboot -1: %v", err)
	}
}

// A config file written for the original tool keeps its meaning.
func TestLoadConfigOriginalFile(t *testing.T) {
	abs, err := filepath.Abs(filepath.Join("testdata", "original"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(Flags{}, abs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"HOME_DIR", c.HomeDir, abs},
		{"IMAGE_NAME", c.ImageName, filepath.Join(abs, "resin-raspberrypi3-2.15.1+rev2-dev-v7.16.6.img.gz")},
		{"BACKUP_SCRIPT", c.BackupScript, ""},
		{"BACKUP_DIRECTORIES", c.BackupDirs, []string{"/etc", "/home/pi/app-data"}},
		{"BALENA_CONFIG", c.BalenaConfig, filepath.Join(abs, "config.json")},
		{"BALENA_WIFI", c.BalenaWifi, true},
		{"DEBUG (empty, a comment)", c.Debug, false},
		{"DO_REBOOT", c.Reboot, 10},
		{"GRUB_INSTALL", c.GrubInstall, false},
		{"HAS_WIFI_CFG", c.HasWifiCfg, 1},
		{"MIGRATE_ALL_WIFIS", c.MigrateAllWifis, false},
		{"MIGRATE_WIFI_CFG", c.MigrateWifiCfg, filepath.Join(abs, "migrate-wifis")},
		{"REQUIRE_NMGR_FILE", c.RequireNmgrFile, true},
		{"LOG_DRIVE", c.LogDrive, "/dev/sdb1"},
		{"LOG_FS_TYPE (empty: ext4)", c.LogFSType, "ext4"},
		{"NO_FLASH=yes", c.NoFlash, true},
		{"NO_SETUP", c.NoSetup, false},
		{"TERM_EXIT", c.TermExit, "reboot -f"},
		{"MEM_MIN_FREE_S2 (kB)", c.MemMinFreeS2, int64(64 << 20)},
		{"MEM_MIN_FREE_S1 (kB)", c.MemMinFreeS1, int64(128 << 20)},
		{"MIN_ROOT_AVAIL (kB)", c.MinRootAvail, int64(10 << 20)},
		{"MAX_BADBLOCKS", c.MaxBadblocks, ""},
		{"MIN_WRITE_SPEED", c.MinWriteSpeed, int64(0)},
		{"BALENA_API_HOST", c.APIHost, "api.balena-cloud.com"},
		{"BALENA_VPN_PORT", c.VPNPort, 443},
		{"BALENA_CONNECT_TIMEOUT", c.ConnectTimeout, 20 * time.Second},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.key, tc.got, tc.want)
		}
	}
}

// Each value style of the original tool, and what is refused instead of
// being read as false.
func TestConfigValueMeanings(t *testing.T) {
	for _, tc := range []struct {
		line  string
		check func(c Config) bool
	}{
		{"NO_FLASH=yes", func(c Config) bool { return c.NoFlash }},
		{"NO_FLASH=1", func(c Config) bool { return c.NoFlash }},
		{"NO_FLASH=true", func(c Config) bool { return c.NoFlash }},
		{"NO_FLASH=FALSE", func(c Config) bool { return !c.NoFlash }},
		{"NO_FLASH=no", func(c Config) bool { return !c.NoFlash }},
		{"NO_FLASH=0", func(c Config) bool { return !c.NoFlash }},
		{"NO_FLASH=", func(c Config) bool { return !c.NoFlash }},
		{"DO_REBOOT=TRUE", func(c Config) bool { return c.Reboot == 5 }},
		{"DO_REBOOT=FALSE", func(c Config) bool { return c.Reboot == -1 }},
		{"DO_REBOOT=", func(c Config) bool { return c.Reboot == -1 }},
		{"DO_REBOOT=30", func(c Config) bool { return c.Reboot == 30 }},
		{"HAS_WIFI_CFG=2", func(c Config) bool { return c.HasWifiCfg == 2 }},
		{"HAS_WIFI_CFG=TRUE", func(c Config) bool { return c.HasWifiCfg == 1 }},
		{"HAS_WIFI_CFG=", func(c Config) bool { return c.HasWifiCfg == 0 }},
		{"MEM_MIN_FREE_S2=65536", func(c Config) bool { return c.MemMinFreeS2 == 64<<20 }},
		{"MEM_MIN_FREE_S2=32M", func(c Config) bool { return c.MemMinFreeS2 == 32<<20 }},
		{"MIN_ROOT_AVAIL=2G", func(c Config) bool { return c.MinRootAvail == 2<<30 }},
		{"LOG_FS_TYPE=vfat", func(c Config) bool { return c.LogFSType == "vfat" }},
		{"TERM_EXIT=reboot", func(c Config) bool { return c.TermExit == "reboot" }},
		{"TERM_EXIT=\"exit 1\"", func(c Config) bool { return c.TermExit == "exit 1" }},
		{"WATCHDOG=", func(c Config) bool { return c.Watchdog == 300 }},
		{"WATCHDOG=0", func(c Config) bool { return c.Watchdog == 0 }},
		{"WATCHDOG=10", func(c Config) bool { return c.Watchdog == 10 }},
		{"WATCHDOG=3600", func(c Config) bool { return c.Watchdog == 3600 }},
	} {
		dir := t.TempDir()
		writeConf(t, dir, "balena-migrate.conf", "IMAGE_NAME=x.img.gz\n"+tc.line+"\n")
		c, err := LoadConfig(Flags{}, dir)
		if err != nil || !tc.check(c) {
			t.Errorf("%s: %+v %v", tc.line, c, err)
		}
	}
	for _, tc := range []struct{ line, words string }{
		{"NO_FLASH=on", `"on" is not a boolean: write TRUE or FALSE`},
		{"NO_FLASH=TRUE!", "NO_FLASH"},
		{"NO_SETUP=Y", "NO_SETUP"},
		{"DEBUG=enabled", "DEBUG"},
		{"DO_REBOOT=later", "write DO_REBOOT=10"},
		{"HAS_WIFI_CFG=some", "HAS_WIFI_CFG"},
		{"MEM_MIN_FREE_S1=64MB", "kB"},
		{"TERM_EXIT=halt", `write "exit 0"`},
		{"WATCHDOG=9", "WATCHDOG=9: write 0 (no watchdog) or a timeout of 10..3600 seconds"},
		{"WATCHDOG=3601", "WATCHDOG=3601"},
		{"WATCHDOG=-1", "WATCHDOG"},
		{"WATCHDOG=5m", "WATCHDOG"},
	} {
		dir := t.TempDir()
		writeConf(t, dir, "balena-migrate.conf", "IMAGE_NAME=x.img.gz\n"+tc.line+"\n")
		if _, err := LoadConfig(Flags{}, dir); !usage.Is(err) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: want a usage error with %q, got %v", tc.line, tc.words, err)
		}
	}
}
