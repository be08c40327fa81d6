package releasetest

import (
	"bytes"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// checkCopyright holds a Debian copyright file to its promise: the
// machine-readable format, the project under Apache-2.0, and a paragraph
// with a licence text for every module linked into each binary (as the
// binary itself records them) and for the Go standard library.
func checkCopyright(t *testing.T, copyright string, binaries ...string) {
	t.Helper()
	if !strings.HasPrefix(copyright, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Errorf("the copyright file is not in Debian's machine-readable format:\n%.300s", copyright)
	}
	paras := map[string]string{} // Files: value → paragraph
	for _, p := range strings.Split(copyright, "\n\n") {
		first, _, _ := strings.Cut(p, "\n")
		if files, ok := strings.CutPrefix(first, "Files: "); ok {
			paras[files] = p
		}
	}
	if p := paras["*"]; !strings.Contains(p, "\nLicense: Apache-2.0\n") {
		t.Errorf("the project's paragraph does not name Apache-2.0:\n%s", p)
	}
	need := map[string]bool{"go/*": true}
	for _, bin := range binaries {
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		for _, d := range bi.Deps {
			need["vendor/"+d.Path+"/*"] = true
		}
	}
	for files := range need {
		p, ok := paras[files]
		if !ok {
			t.Errorf("the copyright file has no paragraph for %s, which is linked into the programs", files)
			continue
		}
		_, body, _ := strings.Cut(p, "\nLicense: ")
		if lines := strings.Count(body, "\n "); lines < 3 || strings.HasPrefix(body, "other") {
			t.Errorf("the paragraph for %s carries no recognised licence text:\n%s", files, p)
		}
	}
}

// The project's licence is Apache-2.0, and scripts/deb/copyright covers
// every module the programs link. (The installed package's file is checked
// against the arm64 or amd64 programs by TestReleaseInstallsOnDebian12.)
func TestCopyrightCoversEveryLinkedModule(t *testing.T) {
	goBin := testenv.NeedProgram(t, "go")
	license, err := os.ReadFile(filepath.Join(repo, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(license, []byte("Apache License\n                           Version 2.0, January 2004")) ||
		!bytes.Contains(license, []byte("END OF TERMS AND CONDITIONS")) {
		t.Errorf("LICENSE is not the full Apache License 2.0 text")
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, p := range programs {
		args = append(args, repo+"/cmd/"+p)
	}
	if out, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var bins []string
	for _, p := range programs {
		bins = append(bins, filepath.Join(dir, p))
	}
	out, err := exec.Command(filepath.Join(repo, "scripts/deb/copyright")).Output()
	if err != nil {
		t.Fatalf("scripts/deb/copyright: %v", err)
	}
	checkCopyright(t, string(out), bins...)
}
