package blkdev

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// udev re-reads a disk's table when a writer closes it, so right after a
// flash a partition's sysfs entry can be half there: seen, then unreadable.
// A real kernel shows this only now and then (once in 12 flashes in the
// end-to-end VMs: "open /sys/class/block/vda6/size: no such device"), so
// the sysfs directory here is a plain one whose size file comes late.
func TestEnsurePartitionWaitsOutAVanishingEntry(t *testing.T) {
	sys := filepath.Join(t.TempDir(), "vda6")
	os.Mkdir(sys, 0o755)
	p := Partition{Number: 6, Start: 2048 * 512, Length: 4096 * 512}
	os.WriteFile(filepath.Join(sys, "start"), []byte("2048\n"), 0o644)
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(filepath.Join(sys, "size"), []byte("4096\n"), 0o644)
	}()
	var logs []string
	log := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	// A nil disk: any BLKPG call would fail the test.
	if err := ensurePartition(context.Background(), nil, sys, p, time.Now().Add(time.Second), log); err != nil {
		t.Fatalf("ensurePartition: %v (log %q)", err, logs)
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "changed under us") {
		t.Errorf("log %q, want the vanished read noted", logs)
	}
}

func TestSysSerial(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"SATA disk: VPD 0x83 id first", map[string]string{"device/wwid": "t10.ATA     Samsung SSD 860 EVO 500GB   S3Z1NB0K123456X\n", "device/vpd_pg80": "x"},
			"wwid:t10.ATA Samsung SSD 860 EVO 500GB S3Z1NB0K123456X"},
		{"NVMe namespace", map[string]string{"wwid": "eui.0025385b71b0ab1c\n", "device/serial": "S4EWNX0N123456  \n"}, "wwid:eui.0025385b71b0ab1c"},
		{"SD card (mmcblk0)", map[string]string{"device/serial": "0x1a2b3c4d\n", "device/cid": "..."}, "serial:0x1a2b3c4d"},
		{"virtio disk", map[string]string{"serial": "balena-migrate-test\n"}, "serial:balena-migrate-test"},
		{"empty serial", map[string]string{"serial": "\n"}, ""},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, d := range tc.files {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
				os.WriteFile(filepath.Join(dir, n), []byte(d), 0o444)
			}
			if got := SysSerial(dir); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
