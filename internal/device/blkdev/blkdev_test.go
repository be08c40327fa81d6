package blkdev_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

func TestTableAndLabelsOfBalenaImage(t *testing.T) {
	img, err := testimg.BalenaOS(filepath.Join(t.TempDir(), "balena.img"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, err := blkdev.ReadTable(f)
	if err != nil {
		t.Fatal(err)
	}
	// Cross-check against sfdisk's own reading of the table.
	out, err := exec.Command("sfdisk", "-d", img.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "start="); n != len(parts) {
		t.Fatalf("sfdisk lists %d partitions, ReadTable %d:\n%s", n, len(parts), out)
	}
	if !parts[3].Extended || parts[4].Number != 5 || parts[5].Number != 6 {
		t.Fatalf("unexpected layout %+v", parts)
	}
	for _, tc := range []struct {
		label, typ string
		num        int
	}{{"resin-boot", blkdev.FSVfat, 1}, {"RESIN-BOOT", blkdev.FSVfat, 1}, {"resin-state", blkdev.FSExt4, 5}, {"resin-data", blkdev.FSExt4, 6}} {
		loc, err := blkdev.FindLabel(f, parts, tc.label)
		if err != nil || loc.Type != tc.typ || loc.Number != tc.num {
			t.Errorf("FindLabel(%s) = %+v, %v; want %s partition %d", tc.label, loc, err, tc.typ, tc.num)
		}
	}
	if _, err := blkdev.FindLabel(f, parts, "flash-rootA"); err == nil || !strings.Contains(err.Error(), "resin-data") {
		t.Errorf("missing label: err = %v, want one listing what was found", err)
	}
}

func TestGPTTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gpt.img")
	if err := os.Truncate(mustCreate(t, p), 8*testimg.MiB); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", p)
	cmd.Stdin = strings.NewReader("label: gpt\nsize=2048\nsize=4096\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v %s", err, out)
	}
	f, _ := os.Open(p)
	defer f.Close()
	parts, err := blkdev.ReadTable(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].Start != 2048*512 || parts[0].Length != 2048*512 || parts[1].Length != 4096*512 || parts[1].Number != 2 {
		t.Fatalf("GPT parts = %+v", parts)
	}
}

func TestNoTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "blank")
	if err := os.Truncate(mustCreate(t, p), 4096); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	if _, err := blkdev.ReadTable(f); err != blkdev.ErrNoTable {
		t.Fatalf("err = %v, want ErrNoTable", err)
	}
}

// On a loop device the host kernel does not scan the table by itself:
// MakeNodes must get the partitions in with BLKRRPART/BLKPG, and the nodes
// must show the filesystems at the right offsets.
func TestMakeNodesOnLoopDevice(t *testing.T) { testMakeNodes(t, false) }

// Where BLKRRPART cannot replace the old table, a partition the kernel
// still has with the old offsets must be replaced, not used.
func TestMakeNodesReplacesStalePartition(t *testing.T) { testMakeNodes(t, true) }

func testMakeNodes(t *testing.T, stale bool) {
	testenv.NeedRoot(t, "loop devices")
	img, err := testimg.BalenaOS(filepath.Join(t.TempDir(), "balena.img"))
	if err != nil {
		t.Fatal(err)
	}
	dev, detach, err := testimg.Loop(img.Path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	if stale {
		// The kernel still knows partition 1 from an old table, elsewhere,
		// and an open partition 9 makes BLKRRPART fail with EBUSY.
		f, _ := os.Open(dev)
		err1 := blkdev.AddPartition(f, blkdev.Partition{Number: 1, Start: img.Parts[5].Start, Length: testimg.MiB})
		err2 := blkdev.AddPartition(f, blkdev.Partition{Number: 9, Start: img.Size - testimg.MiB, Length: testimg.MiB}) // after resin-data
		f.Close()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		busy, err := os.Open(dev + "p9")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
	}
	var logs []string
	nodes, err := blkdev.MakeNodes(context.Background(), dev, img.Parts, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatalf("MakeNodes: %v (log %q)", err, logs)
	}
	if stale && !strings.Contains(strings.Join(logs, "\n"), "still the old partition") {
		t.Errorf("stale partition not reported: %q", logs)
	}
	for num, label := range map[int]string{1: "resin-boot", 6: "resin-data"} {
		f, err := os.Open(nodes[num])
		if err != nil {
			t.Fatal(err)
		}
		fs, err := blkdev.Probe(f, 0)
		f.Close()
		if err != nil || fs.Label != label {
			t.Errorf("%s: %+v %v, want label %s", nodes[num], fs, err, label)
		}
		if size, _ := os.ReadFile("/sys/class/block/" + filepath.Base(nodes[num]) + "/size"); strings.TrimSpace(string(size)) == "" {
			t.Errorf("%s has no sysfs size", nodes[num])
		}
	}
}

func mustCreate(t *testing.T, p string) string {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
