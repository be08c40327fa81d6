package blkdev_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// sfdiskFile partitions a new file of size bytes with an sfdisk script.
func sfdiskFile(t *testing.T, path string, size int64, script string) {
	t.Helper()
	if err := os.Truncate(mustCreate(t, path), size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v %s", err, out)
	}
}

// wipefsTypes lists the signature types util-linux's wipefs finds in path.
func wipefsTypes(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(testenv.NeedProgram(t, "wipefs"), "--no-act", "--noheadings", "--output", "TYPE", path).CombinedOutput()
	if err != nil {
		t.Fatalf("wipefs: %v %s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// An MBR image written over a GPT disk leaves the backup GPT at the end;
// ClearTail removes it and nothing inside the image.
func TestClearTailRemovesStaleBackupGPT(t *testing.T) {
	dir := t.TempDir()
	disk, img := filepath.Join(dir, "disk"), filepath.Join(dir, "img")
	sfdiskFile(t, disk, 16*testimg.MiB, "label: gpt\nsize=8192\n")
	sfdiskFile(t, img, 6*testimg.MiB, "label: dos\nsize=4096, type=83\n")
	image, _ := os.ReadFile(img)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(image, 0); err != nil {
		t.Fatal(err)
	}
	if got := wipefsTypes(t, disk); !strings.Contains(got, "gpt") {
		t.Fatalf("the fixture has no stale gpt to clear: wipefs says %q", got)
	}
	before, _ := os.ReadFile(disk)
	stale, err := blkdev.ClearTail(f, int64(len(image)))
	if err != nil || !stale {
		t.Fatalf("ClearTail = %v, %v; want a stale GPT found", stale, err)
	}
	if got := wipefsTypes(t, disk); got != "dos" {
		t.Fatalf("after ClearTail wipefs finds %q, want only dos", got)
	}
	after, _ := os.ReadFile(disk)
	if keep := len(after) - testimg.MiB; !bytes.Equal(after[:keep], before[:keep]) {
		t.Fatal("ClearTail changed bytes before the last MiB")
	}
	if !bytes.Equal(after[len(after)-testimg.MiB:], make([]byte, testimg.MiB)) {
		t.Fatal("the last MiB is not zero")
	}
}

// An image reaching into the last MiB keeps every one of its bytes.
func TestClearTailSparesTheImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	data := bytes.Repeat([]byte{0xAB}, 4*testimg.MiB)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end := int64(len(data)) - 4096
	if _, err := blkdev.ClearTail(f, end); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got[:end], data[:end]) || !bytes.Equal(got[end:], make([]byte, 4096)) {
		t.Fatal("ClearTail touched the image or left the rest")
	}
	if _, err := blkdev.ClearTail(f, int64(len(data))); err != nil {
		t.Fatalf("image as large as the disk: %v", err)
	}
}
