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
	}
	for _, tc := range []struct {
		name      string
		timeout   int
		hw        *wd
		dep       string // modules.dep lines
		builtin   string // modules.builtin lines
		want      watchdogChoice
		wantWords string
	}{
		{"off", 0, &wd{"iTCO_wdt", "iTCO_wdt"}, "kernel/drivers/watchdog/iTCO_wdt.ko:\n", "",
			watchdogChoice{}, "WATCHDOG=0"},
		{"hardware driver module", 120, &wd{"iTCO_wdt", "iTCO_wdt"}, "kernel/drivers/watchdog/iTCO_wdt.ko:\nkernel/drivers/watchdog/softdog.ko:\n", "",
			watchdogChoice{timeout: 120, module: "iTCO_wdt"}, "driver iTCO_wdt"},
		{"hardware driver built in", 300, &wd{"Broadcom BCM2835 Watchdog timer", ""}, "", "kernel/drivers/watchdog/bcm2835_wdt.ko\n",
			watchdogChoice{timeout: 300}, "driver built in"},
		{"driver module not installed: softdog", 300, &wd{"i6300ESB timer", "i6300esb"}, "kernel/drivers/watchdog/softdog.ko.xz:\n", "",
			watchdogChoice{timeout: 300, module: "softdog"}, "i6300esb"},
		{"no hardware: softdog", 60, nil, "kernel/drivers/watchdog/softdog.ko.zst:\n", "",
			watchdogChoice{timeout: 60, module: "softdog"}, "softdog (resets a hung initramfs"},
		{"softdog built in", 60, nil, "", "kernel/drivers/watchdog/softdog.ko\n",
			watchdogChoice{timeout: 60}, "softdog"},
		{"nothing at all", 300, nil, "kernel/fs/vfat/vfat.ko:\n", "",
			watchdogChoice{}, "a hang in the stage-2 boot is not reset"},
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
			if tc.hw != nil {
				dir := "sys/class/watchdog/watchdog0"
				write(dir+"/identity", tc.hw.identity+"\n")
				write(dir+"/device/driver/bind", "")
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
