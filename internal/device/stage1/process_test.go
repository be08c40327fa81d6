package stage1

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLockIsExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	release, err := Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(p); err == nil || !strings.Contains(err.Error(), "another balena-migrate is running") {
		t.Fatalf("second lock: %v", err)
	}
	release()
	again, err := Lock(p)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

func TestScheduleRebootRunsDetached(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "rebooted")
	start := time.Now()
	if err := ScheduleReboot(1, "echo $$ > "+marker+"; sleep 3"); err != nil {
		t.Fatal(err)
	}
	for time.Since(start) < 10*time.Second {
		if b, err := os.ReadFile(marker); err == nil && len(b) > 0 {
			if time.Since(start) < time.Second {
				t.Fatal("ran before the delay")
			}
			var pid int
			fmt.Sscan(string(b), &pid)
			sid, err := unix.Getsid(pid) // the shell sleeps on: still there
			if err != nil || sid != pid || sid == mustSid(t) {
				t.Fatalf("not in its own session: pid %d sid %d", pid, sid)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the scheduled command never ran")
}

func mustSid(t *testing.T) int {
	sid, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}
