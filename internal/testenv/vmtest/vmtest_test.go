package vmtest

import (
	"bytes"
	"compress/gzip"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestModuleClosureOrder(t *testing.T) {
	k, err := FindKernel()
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ModuleClosure(k.ModulesDir, stage2Modules())
	if err != nil {
		t.Fatal(err)
	}
	idx := func(name string) int {
		return slices.IndexFunc(mods, func(m string) bool { return strings.HasSuffix(m, "/"+name+".ko") })
	}
	for _, pair := range [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_pci"}, {"virtio_pci", "virtio_blk"}, {"fat", "vfat"}} {
		a, b := idx(pair[0]), idx(pair[1])
		if a < 0 || b < 0 || a > b {
			t.Errorf("%s (at %d) must load before %s (at %d): %v", pair[0], a, pair[1], b, mods)
		}
	}
	for _, m := range []string{"nls_cp437", "nls_iso8859-1", "nls_ascii"} {
		if idx(m) < 0 {
			t.Errorf("%s missing from %v", m, mods)
		}
	}
	if _, err := ModuleClosure(k.ModulesDir, []string{"no_such_module"}); err == nil {
		t.Error("unknown module accepted")
	}
}

// busybox cpio must list what the archive holds, device node included.
func TestArchiveIsNewcCpio(t *testing.T) {
	a := Archive{}
	a.AddFile("init", []byte("#!/bin/sh\n"), 0o755)
	a.AddFile("etc/deep/file", []byte("odd length!"), 0o644)
	a["dev/console"] = Entry{Mode: ModeChar | 0o600, Major: 5, Minor: 1}
	var gz bytes.Buffer
	if err := a.WriteGzip(&gz); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("busybox", "cpio", "-t", "-v")
	cmd.Stdin = zr
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox cpio: %v\n%s", err, out)
	}
	for _, want := range []string{"init", "etc/deep/file", "etc/deep", "dev/console", "crw-------"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
}
