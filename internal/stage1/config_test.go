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
	c, err = LoadConfig(Flags{Home: home, Reboot: &zero, BalenaCfg: "cfg.json", BadBlocks: "7", WriteSpeed: &speed, Pretend: true}, cwd)
	if err != nil || c.ImageName != filepath.Join(home, "from-home.img.gz") || c.Reboot != 0 ||
		c.BalenaConfig != filepath.Join(home, "cfg.json") || c.MaxBadblocks != "7" || c.MinWriteSpeed != 2048 || !c.NoSetup || !c.NoFlash {
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
