package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCLI copies testdata/balena-standin, a bash stand-in for the balena
// CLI (its header says which files steer it), into a fresh directory with
// the given fleets and returns its path.
func fakeCLI(t *testing.T, apps ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "balena")
	script, err := os.ReadFile("testdata/balena-standin")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "apps"), []byte(strings.Join(apps, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin
}

// control writes a steering file next to the stand-in.
func control(t *testing.T, bin, name, content string) {
	t.Helper()
	p := filepath.Join(filepath.Dir(bin), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// argv returns the stand-in's recorded command lines.
func argv(t *testing.T, bin string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(bin), "argv.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
