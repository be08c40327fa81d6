package stage1

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/watchdog"
)

// watchdogChoice is the watchdog the stage-2 boot arms.
type watchdogChoice struct {
	timeout int    // seconds; 0: none
	module  string // driver module to load; empty: built into the kernel
	what    string // for the log
	dir     string // its /sys/class/watchdog entry; "" for softdog
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
	if hw, ok := f.hardwareWatchdog(release, log); ok {
		if hw.module == "" || avail[hw.module] {
			hw.timeout = timeout
			log.Info("watchdog: %s, %d s timeout for the stage-2 boot", hw.what, hw.timeout)
			if max, ok := watchdog.MaxTimeout(f.p(hw.dir)); ok && max < timeout {
				log.Warn("watchdog: its driver takes at most %d s, not WATCHDOG=%d: it keeps its own timeout, and the stage-2 boot feeds it from its first step until stage 2 takes it over, for WATCHDOG seconds at most", max, timeout)
			}
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

// softdogIdentity is how softdog names itself in sysfs.
const softdogIdentity = "Software Watchdog"

// hardwareWatchdog reads the first watchdog in /sys/class/watchdog and the
// module of its driver (none when the driver is built in). Most drivers
// link the entry to their device; some register a device of their own
// (i6300esb, qemu's PC watchdog, in Debian's kernels), whose driver is then
// the loaded module that uses the watchdog core.
func (f files) hardwareWatchdog(release string, log *Log) (watchdogChoice, bool) {
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
		if what == softdogIdentity {
			continue
		}
		if what == "" {
			what = n
		}
		what = n + " (" + what + ")"
		if max, ok := watchdog.MaxTimeout(f.p(dir)); ok {
			what += fmt.Sprintf(" [at most %d s]", max)
		}
		choice := watchdogChoice{what: what + ", driver built in", dir: dir}
		if !f.exists(filepath.Join(dir, "device", "driver")) {
			mod, ok := f.loadedWatchdogModule(release, log)
			if !ok {
				continue
			}
			if mod != "" {
				choice.module, choice.what = mod, what+", driver "+mod
			}
			return choice, true
		}
		if link, err := os.Readlink(f.p(filepath.Join(dir, "device", "driver", "module"))); err == nil {
			mod := moduleName(path.Base(link))
			choice.module, choice.what = mod, what+", driver "+mod
		}
		return choice, true
	}
	return watchdogChoice{}, false
}

// loadedWatchdogModule finds the driver of a watchdog whose sysfs entry
// names none: the one loaded module that uses the watchdog core (or lives
// with the drivers in drivers/watchdog), softdog and the core's helpers
// aside. It is "" when none is loaded (the driver is built in) and not ok
// when several are, as the entry cannot say which one it is.
func (f files) loadedWatchdogModule(release string, log *Log) (string, bool) {
	loaded := map[string]bool{}
	data, _ := f.read("/proc/modules")
	for _, l := range strings.Split(string(data), "\n") {
		if fs := strings.Fields(l); len(fs) > 0 {
			loaded[moduleName(fs[0])] = true
		}
	}
	dep, _ := f.read("/lib/modules/" + release + "/modules.dep")
	var found []string
	for _, l := range strings.Split(string(dep), "\n") {
		file, deps, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		name := moduleName(path.Base(file))
		if !loaded[name] || name == "watchdog" || name == "softdog" || name == "iTCO_vendor_support" || strings.HasPrefix(name, "pretimeout_") {
			continue
		}
		usesCore := false
		for _, d := range strings.Fields(deps) {
			usesCore = usesCore || moduleName(path.Base(d)) == "watchdog"
		}
		if usesCore || strings.Contains(file, "/drivers/watchdog/") {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		return "", true
	case 1:
		return found[0], true
	}
	sort.Strings(found)
	log.Warn("watchdog: its sysfs entry names no driver and %s are all loaded: not guessing", strings.Join(found, ", "))
	return "", false
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
