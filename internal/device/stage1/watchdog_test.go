package stage1

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseWatchdog(t *testing.T) {
	const rel = "6.1.0-28-arm64"
	type wd struct {
		identity, module string // module "": built-in driver
		noLink           bool   // the class entry has no device/driver link (i6300esb)
		max              string // max_timeout in sysfs
	}
	// Debian 12's generic kernel with qemu's i6300esb loaded: the watchdog
	// core is a module too, and the entry links to no device.
	const esbDep = "kernel/drivers/watchdog/watchdog.ko:\nkernel/drivers/watchdog/i6300esb.ko: kernel/drivers/watchdog/watchdog.ko\n" +
		"kernel/drivers/watchdog/softdog.ko: kernel/drivers/watchdog/watchdog.ko\nkernel/drivers/watchdog/pretimeout_panic.ko: kernel/drivers/watchdog/watchdog.ko\n" +
		"kernel/drivers/hwmon/sch5627.ko: kernel/drivers/watchdog/watchdog.ko\nkernel/fs/fat/vfat.ko:\n"
	const esbLoaded = "i6300esb 16384 0 - Live 0xffffffffc0368000\nwatchdog 45056 1 i6300esb, Live 0xffffffffc0355000\nvfat 24576 0 - Live 0x0\n"
	for _, tc := range []struct {
		name      string
		timeout   int
		hw        *wd
		dep       string // modules.dep lines
		builtin   string // modules.builtin lines
		loaded    string // /proc/modules
		want      watchdogChoice
		wantWords string
	}{
		{"off", 0, &wd{identity: "iTCO_wdt", module: "iTCO_wdt"}, "kernel/drivers/watchdog/iTCO_wdt.ko:\n", "", "",
			watchdogChoice{}, "WATCHDOG=0"},
		{"hardware driver module", 120, &wd{identity: "iTCO_wdt", module: "iTCO_wdt"}, "kernel/drivers/watchdog/iTCO_wdt.ko:\nkernel/drivers/watchdog/softdog.ko:\n", "", "",
			watchdogChoice{timeout: 120, module: "iTCO_wdt"}, "driver iTCO_wdt"},
		{"hardware driver built in", 300, &wd{identity: "Broadcom BCM2835 Watchdog timer", module: ""}, "", "kernel/drivers/watchdog/bcm2835_wdt.ko\n", "",
			watchdogChoice{timeout: 300}, "driver built in"},
		{"driver module not installed: softdog", 300, &wd{identity: "i6300ESB timer", module: "i6300esb"}, "kernel/drivers/watchdog/softdog.ko.xz:\n", "", "",
			watchdogChoice{timeout: 300, module: "softdog"}, "i6300esb"},
		{"no hardware: softdog", 60, nil, "kernel/drivers/watchdog/softdog.ko.zst:\n", "", "",
			watchdogChoice{timeout: 60, module: "softdog"}, "softdog (resets a hung initramfs"},
		{"softdog built in", 60, nil, "", "kernel/drivers/watchdog/softdog.ko\n", "",
			watchdogChoice{timeout: 60}, "softdog"},
		{"nothing at all", 300, nil, "kernel/fs/vfat/vfat.ko:\n", "", "",
			watchdogChoice{}, "a hang in the stage-2 boot is not reset"},
		// The driver of an entry without a device link is found among the
		// loaded modules, and its limit below WATCHDOG is reported.
		{"i6300esb: no device link, module loaded", 3000, &wd{identity: "i6300ESB timer", noLink: true, max: "2046"}, esbDep, "", esbLoaded,
			watchdogChoice{timeout: 3000, module: "i6300esb"}, "its driver takes at most 2046 s, not WATCHDOG=3000"},
		{"i6300esb within its limit", 300, &wd{identity: "i6300ESB timer", noLink: true, max: "2046"}, esbDep, "", esbLoaded,
			watchdogChoice{timeout: 300, module: "i6300esb"}, "watchdog0 (i6300ESB timer) [at most 2046 s], driver i6300esb, 300 s timeout"},
		{"no device link, nothing loaded: built in", 300, &wd{identity: "Some SoC timer", noLink: true}, esbDep, "", "vfat 24576 0 - Live 0x0\n",
			watchdogChoice{timeout: 300}, "driver built in"},
		{"softdog loaded is not hardware", 300, &wd{identity: "Software Watchdog", noLink: true}, esbDep, "", "softdog 16384 0 - Live 0x0\nwatchdog 45056 1 softdog, Live 0x0\n",
			watchdogChoice{timeout: 300, module: "softdog"}, "no hardware watchdog, softdog"},
		{"two candidates: not guessed", 300, &wd{identity: "i6300ESB timer", noLink: true}, esbDep, "", esbLoaded + "sch5627 16384 0 - Live 0x0\n",
			watchdogChoice{timeout: 300, module: "softdog"}, "i6300esb, sch5627 are all loaded: not guessing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write := func(p, data string) {
				p = filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("lib/modules/"+rel+"/modules.dep", tc.dep)
			write("lib/modules/"+rel+"/modules.builtin", tc.builtin)
			write("proc/modules", tc.loaded)
			if tc.hw != nil {
				dir := "sys/class/watchdog/watchdog0"
				write(dir+"/identity", tc.hw.identity+"\n")
				if tc.hw.max != "" {
					write(dir+"/max_timeout", tc.hw.max+"\n")
				}
				if !tc.hw.noLink {
					write(dir+"/device/driver/bind", "")
				}
				if tc.hw.module != "" {
					if err := os.Symlink("../../../../../module/"+tc.hw.module, filepath.Join(root, dir, "device/driver/module")); err != nil {
						t.Fatal(err)
					}
				}
			}
			var log bytes.Buffer
			got := files{root}.chooseWatchdog(tc.timeout, rel, &Log{W: &log})
			if got.timeout != tc.want.timeout || got.module != tc.want.module {
				t.Errorf("got timeout %d module %q, want %d %q", got.timeout, got.module, tc.want.timeout, tc.want.module)
			}
			if !strings.Contains(log.String(), tc.wantWords) {
				t.Errorf("log lacks %q:\n%s", tc.wantWords, log.String())
			}
		})
	}
}
