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

// sideOf places a package by its folder: the tree shows the sides.
// internal/device is on-device code, internal/fleet fleet code,
// internal/testenv and cmd/dev development code, and the other packages
// directly under internal/ are shared by both sides. The commands outside
// cmd/dev are placed by name; a new one fails the test until it is.
func sideOf(path string) (string, bool) {
	switch {
	case path == "internal", strings.HasPrefix(path, "internal/testenv"), strings.HasPrefix(path, "cmd/dev/"),
		strings.HasPrefix(path, "scripts/"):
		return "dev", true
	case strings.HasPrefix(path, "internal/device/"):
		return "device", true
	case strings.HasPrefix(path, "internal/fleet/"):
		return "fleet", true
	case strings.HasPrefix(path, "internal/") && strings.Count(path, "/") == 1:
		return "shared", true
	}
	s, ok := commands[path]
	return s, ok
}

var commands = map[string]string{
	"cmd/balena-migrate":     "device",
	"cmd/migdb-add-unit":     "fleet",
	"cmd/migdb-migrate":      "fleet",
	"cmd/migdb-check-done":   "fleet",
	"cmd/internal/cliapp":    "fleet",
	"cmd/internal/workercmd": "fleet",
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
		mine, ok := sideOf(p.path)
		if !ok {
			t.Errorf("%s is on no side: put it under internal/device, internal/fleet, internal/testenv or directly under internal/ (shared), or name the command in layout_test.go", p.path)
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
			theirs, _ := sideOf(d)
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
