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
func (r *run) chooseWatchdog() watchdogChoice {
	if r.cfg.Watchdog == 0 {
		r.log.Info("WATCHDOG=0: the stage-2 boot runs without a watchdog")
		return watchdogChoice{}
	}
	avail := r.kernelModules()
	if hw, ok := r.hardwareWatchdog(); ok {
		if hw.module == "" || avail[hw.module] {
			hw.timeout = r.cfg.Watchdog
			r.log.Info("watchdog: %s, %d s timeout for the stage-2 boot", hw.what, hw.timeout)
			return hw
		}
		r.log.Warn("watchdog: the driver %s of %s is not among the kernel's modules; trying softdog", hw.module, hw.what)
	}
	if avail["softdog"] {
		mod := "softdog"
		if r.builtinModules()["softdog"] {
			mod = ""
		}
		r.log.Info("watchdog: no hardware watchdog, softdog (resets a hung initramfs or stage 2, not a hung kernel), %d s timeout for the stage-2 boot", r.cfg.Watchdog)
		return watchdogChoice{timeout: r.cfg.Watchdog, module: mod, what: "softdog"}
	}
	r.log.Warn("watchdog: no hardware watchdog and no softdog module for kernel %s: a hang in the stage-2 boot is not reset", r.release)
	return watchdogChoice{}
}

// hardwareWatchdog reads the first watchdog in /sys/class/watchdog and the
// module of its driver (none when the driver is built in).
func (r *run) hardwareWatchdog() (watchdogChoice, bool) {
	entries, err := os.ReadDir(r.p("/sys/class/watchdog"))
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
		ident, _ := r.read(filepath.Join(dir, "identity"))
		what := strings.TrimSpace(string(ident))
		if what == "" {
			what = n
		}
		if !r.exists(filepath.Join(dir, "device", "driver")) {
			continue
		}
		what = n + " (" + what + ")"
		link, err := os.Readlink(r.p(filepath.Join(dir, "device", "driver", "module")))
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
func (r *run) kernelModules() map[string]bool {
	have := r.builtinModules()
	data, _ := r.read("/lib/modules/" + r.release + "/modules.dep")
	for _, l := range strings.Split(string(data), "\n") {
		if f, _, ok := strings.Cut(l, ":"); ok {
			have[moduleName(path.Base(f))] = true
		}
	}
	return have
}

func (r *run) builtinModules() map[string]bool {
	have := map[string]bool{}
	data, _ := r.read("/lib/modules/" + r.release + "/modules.builtin")
	for _, l := range strings.Fields(string(data)) {
		have[moduleName(path.Base(l))] = true
	}
	return have
}
