package stage1

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// watchdogChoice is the watchdog the stage-2 boot arms.
type watchdogChoice struct {
	timeout int    // seconds; 0: none
	module  string // driver module to load; empty: built into the kernel
	what    string // for the log
}

// chooseWatchdog picks the watchdog of the stage-2 boot: the driver of the
// running system's first watchdog when its module is there for the kernel
// (or built in), otherwise softdog, a kernel timer that resets a hung
// initramfs or stage 2 but not a hung kernel. Without either the boot runs
// unguarded, as before: a warning, not a refusal, since stage 2 can finish
// without it.
func (f files) chooseWatchdog(timeout int, release string, log *Log) watchdogChoice {
	if timeout == 0 {
		log.Info("WATCHDOG=0: the stage-2 boot runs without a watchdog")
		return watchdogChoice{}
	}
	avail := f.kernelModules(release)
	if hw, ok := f.hardwareWatchdog(); ok {
		if hw.module == "" || avail[hw.module] {
			hw.timeout = timeout
			log.Info("watchdog: %s, %d s timeout for the stage-2 boot", hw.what, hw.timeout)
			return hw
		}
		log.Warn("watchdog: the driver %s of %s is not among the kernel's modules; trying softdog", hw.module, hw.what)
	}
	if avail["softdog"] {
		mod := "softdog"
		if f.builtinModules(release)["softdog"] {
			mod = ""
		}
		log.Info("watchdog: no hardware watchdog, softdog (resets a hung initramfs or stage 2, not a hung kernel), %d s timeout for the stage-2 boot", timeout)
		return watchdogChoice{timeout: timeout, module: mod, what: "softdog"}
	}
	log.Warn("watchdog: no hardware watchdog and no softdog module for kernel %s: a hang in the stage-2 boot is not reset", release)
	return watchdogChoice{}
}

// hardwareWatchdog reads the first watchdog in /sys/class/watchdog and the
// module of its driver (none when the driver is built in).
func (f files) hardwareWatchdog() (watchdogChoice, bool) {
	entries, err := os.ReadDir(f.p("/sys/class/watchdog"))
	if err != nil {
		return watchdogChoice{}, false
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names) // watchdog0 is /dev/watchdog
	for _, n := range names {
		dir := filepath.Join("/sys/class/watchdog", n)
		ident, _ := f.read(filepath.Join(dir, "identity"))
		what := strings.TrimSpace(string(ident))
		if what == "" {
			what = n
		}
		if !f.exists(filepath.Join(dir, "device", "driver")) {
			continue
		}
		what = n + " (" + what + ")"
		link, err := os.Readlink(f.p(filepath.Join(dir, "device", "driver", "module")))
		if err != nil {
			return watchdogChoice{what: what + ", driver built in"}, true
		}
		mod := moduleName(path.Base(link))
		return watchdogChoice{module: mod, what: what + ", driver " + mod}, true
	}
	return watchdogChoice{}, false
}

// kernelModules lists the modules of the running kernel (modules.dep) and
// those built into it, by modprobe name.
func (f files) kernelModules(release string) map[string]bool {
	have := f.builtinModules(release)
	data, _ := f.read("/lib/modules/" + release + "/modules.dep")
	for _, l := range strings.Split(string(data), "\n") {
		if f, _, ok := strings.Cut(l, ":"); ok {
			have[moduleName(path.Base(f))] = true
		}
	}
	return have
}

func (f files) builtinModules(release string) map[string]bool {
	have := map[string]bool{}
	data, _ := f.read("/lib/modules/" + release + "/modules.builtin")
	for _, l := range strings.Fields(string(data)) {
		have[moduleName(path.Base(l))] = true
	}
	return have
}
