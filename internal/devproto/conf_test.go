package devproto

import (
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/envfile"
)

func readConf(t *testing.T, body, home string) (Conf, error) {
	t.Helper()
	f, err := envfile.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return ReadConf(f, home)
}

// NO_FLASH means TRUE unless the file says otherwise; only the words of a
// boolean are taken, so a typo never means "flash".
func TestReadConfNoFlash(t *testing.T) {
	for _, tc := range []struct {
		body    string
		noFlash bool
		err     bool
	}{
		{"IMAGE_NAME=x.img.gz\n", true, false},
		{"", true, false},
		{"NO_FLASH=TRUE\n", true, false},
		{"NO_FLASH=yes\n", true, false},
		{"NO_FLASH=FALSE\n", false, false},
		{"NO_FLASH=0\n", false, false},
		{"NO_FLASH=\n", false, false}, // the original tool's empty value is FALSE
		{"NO_FLASH=on\n", true, true},
		{"NO_FLASH=flash\n", true, true},
	} {
		c, err := readConf(t, tc.body, "")
		if c.NoFlash != tc.noFlash || (err != nil) != tc.err {
			t.Errorf("%q: NO_FLASH %v, err %v", tc.body, c.NoFlash, err)
		}
		if err != nil && !strings.Contains(err.Error(), "NO_FLASH") {
			t.Errorf("%q: the error does not name NO_FLASH: %v", tc.body, err)
		}
	}
}

func TestReadConfPaths(t *testing.T) {
	body := "IMAGE_NAME=img/balena.img.gz\nBALENA_CONFIG=/etc//balena.json\nCOPY_NMGR_FILES=\"eth0 /x/wifi\"\n"
	c, err := readConf(t, body, "/home/pi/migrate/")
	if err != nil || c.HomeDir != "/home/pi/migrate" || c.ImageName != "/home/pi/migrate/img/balena.img.gz" ||
		c.BalenaConfig != "/etc/balena.json" || strings.Join(c.CopyNmgrFiles, " ") != "/home/pi/migrate/eth0 /x/wifi" {
		t.Errorf("in a home: %+v %v", c, err)
	}
	// The fleet reads names as written, to look them up in the environment.
	c, err = readConf(t, body, "")
	if err != nil || c.HomeDir != "" || c.ImageName != "img/balena.img.gz" || c.BalenaConfig != "/etc//balena.json" {
		t.Errorf("without a home: %+v %v", c, err)
	}
}

func TestReadConfValues(t *testing.T) {
	c, err := readConf(t, "DO_REBOOT=TRUE\nHAS_WIFI_CFG=yes\nMEM_MIN_FREE_S1=128\nMIN_ROOT_AVAIL=2M\nWATCHDOG=\nLOG_FS_TYPE=\nBALENA_CONNECT_TIMEOUT=5\n", "/m")
	def := DefaultConf()
	if err != nil || c.Reboot != 5 || c.HasWifiCfg != 1 || c.MemMinFreeS1 != 128<<10 || c.MinRootAvail != 2<<20 ||
		c.Watchdog != def.Watchdog || c.LogFSType != def.LogFSType || c.ConnectTimeout.Seconds() != 5 {
		t.Errorf("%+v %v", c, err)
	}
	// Every key that does not parse is named, not just the first.
	_, err = readConf(t, "DO_REBOOT=soon\nDEBUG=maybe\nWATCHDOG=-1\nMIN_ROOT_AVAIL=lots\n", "/m")
	for _, key := range []string{"DO_REBOOT", "DEBUG", "WATCHDOG", "MIN_ROOT_AVAIL"} {
		if err == nil || !strings.Contains(err.Error(), key+": ") {
			t.Errorf("the error does not name %s: %v", key, err)
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"TRUE": true, "yes": true, " 1 ": true, "False": false, "no": false, "0": false, "": false} {
		if got, err := ParseBool(in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"on", "off", "2", "ture"} {
		if _, err := ParseBool(in); err == nil {
			t.Errorf("ParseBool(%q) accepted", in)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "32K": 32 << 10, "64m": 64 << 20, "1G": 1 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "1T", "9999999999G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
