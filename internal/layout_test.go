// The layout rules every package follows, checked over the real import
// graph: on-device code and fleet code never import each other, only tests
// import the testing package, and every package is placed on one side.
package internal_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/fleetmig/balena-migrate/"

// side places each package. A new package must be added here: the test
// fails for a package it does not know.
var side = map[string]string{
	"cmd/balena-migrate": "device",
	"internal/stage1":    "device",
	"internal/stage2":    "device",
	"internal/s2config":  "device",
	"internal/flash":     "device",
	"internal/blkdev":    "device",
	"internal/ext4":      "device",
	"internal/fat":       "device",
	"internal/extract":   "device",

	"internal/wifi":     "device",
	"internal/devlog":   "device",
	"internal/fetch":    "device",
	"scripts/initramfs": "device",
	"internal/watchdog": "device",

	"cmd/migdb-add-unit":     "fleet",
	"cmd/migdb-migrate":      "fleet",
	"cmd/migdb-check-done":   "fleet",
	"cmd/internal/cliapp":    "fleet",
	"cmd/internal/workercmd": "fleet",
	"internal/addunit":       "fleet",
	"internal/backoff":       "fleet",
	"internal/balena":        "fleet",
	"internal/balena/api":    "fleet",
	"internal/balena/cli":    "fleet",
	"internal/balena/cloud":  "fleet",
	"internal/balena/fake":   "fleet",
	"internal/checkdone":     "fleet",
	"internal/config":        "fleet",
	"internal/logging":       "fleet",
	"internal/migrate":       "fleet",
	"internal/remote":        "fleet",
	"internal/remote/upload": "fleet",
	"internal/spool":         "fleet",
	"internal/stats":         "fleet",
	"internal/unit":          "fleet",
	"internal/worker":        "fleet",

	// Both sides may use these; they import neither side.
	"internal/buildinfo": "shared",
	"internal/envfile":   "shared",
	"internal/fsutil":    "shared",
	"internal/iox":       "shared",
	"internal/usage":     "shared",
	// Device types are the vocabulary of both sides: the fleet registers a
	// device with its type, the device checks its image against it.
	"internal/devicetype": "shared",

	// Development and test helpers: not shipped, may use either side.
	"cmd/dev/balenaos-standin":   "dev",
	"cmd/dev/e2e":                "dev",
	"cmd/dev/benchtool":          "dev",
	"cmd/dev/dbbench":            "dev",
	"cmd/dev/fake-balena-api":    "dev",
	"cmd/dev/flashbench":         "dev",
	"cmd/dev/fleet-sim":          "dev",
	"cmd/dev/vm":                 "dev",
	"cmd/dev/wanbench":           "dev",
	"internal":                   "dev", // this test
	"internal/testenv":           "dev",
	"internal/testenv/balenaimg": "dev",
	"internal/testenv/e2e":       "dev",
	"internal/testenv/devvm":     "dev",
	"internal/testenv/fleetsim":  "dev",
	"internal/testenv/netsim":    "dev",
	"internal/testenv/sshtest":   "dev",
	"internal/testenv/testimg":   "dev",
	"internal/testenv/vmtest":    "dev",
	"scripts/releasetest":        "dev",
}

type pkg struct {
	path string
	deps []string // every package it links, transitively, test files excluded
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkgs = append(pkgs, pkg{path: strings.TrimPrefix(f[0], module), deps: f[1:]})
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages: %s", len(pkgs), out)
	}
	return pkgs
}

func TestDeviceAndFleetCodeNeverImportEachOther(t *testing.T) {
	for _, p := range listPackages(t) {
		mine, ok := side[p.path]
		if !ok {
			t.Errorf("%s is not placed in layout_test.go: say whether it is device, fleet, shared or dev code", p.path)
			continue
		}
		for _, d := range p.deps {
			if !strings.HasPrefix(d, module) {
				if d == "testing" {
					t.Errorf("%s links the testing package outside its tests", p.path)
				}
				continue
			}
			d = strings.TrimPrefix(d, module)
			theirs := side[d]
			switch {
			case mine == "device" && theirs == "fleet", mine == "fleet" && theirs == "device":
				t.Errorf("%s (%s code) imports %s (%s code)", p.path, mine, d, theirs)
			case mine == "shared" && (theirs == "fleet" || theirs == "device"):
				t.Errorf("%s (shared) imports %s (%s code): shared code must stay on neither side", p.path, d, theirs)
			case mine != "dev" && theirs == "dev":
				t.Errorf("%s ships, but imports the development package %s", p.path, d)
			case p.path == "cmd/migdb-add-unit" && strings.HasPrefix(d, "internal/balena"):
				t.Errorf("migdb-add-unit never talks to balena, but links %s", d)
			}
		}
	}
}
