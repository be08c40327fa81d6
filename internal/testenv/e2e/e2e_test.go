package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
	"github.com/fleetmig/balena-migrate/internal/testenv/openbalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// Debian 12 machines, one booting with the PC BIOS from an MBR disk and one
// with UEFI from a GPT disk, are migrated by the real workers over SSH:
// probe, upload, pre-flight, registration, stage 1 in the VM, reboot into
// stage 2 (verify, flash), first boot of the flashed stand-in, which
// reports to the real balena API (open-balena-api, through a TLS front
// with the instance's own CA) as the supervisor does, with the config.json
// stage 2 placed, and migdb-check-done moves each unit to done/ on the
// server's heartbeat. A third BIOS machine has its
// image damaged after stage 1: stage 2 refuses, the old system answers SSH
// again, and migdb-check-done, looking over SSH soon after migration,
// fails the unit as stage2 with stage 2's reason. A fourth is rehearsed
// (--rehearsal, NO_FLASH=TRUE): nothing registered, stage 2 stops before
// flashing, the old system answers SSH again, and the unit is back in
// units/ with REHEARSAL=ok.
func TestMigrations(t *testing.T) {
	if testing.Short() {
		t.Skip("migrates four VMs under TCG (about ten minutes)")
	}
	testenv.NeedRoot(t, "the cached device disk and its key are root's")
	for _, p := range []string{"qemu-system-x86_64", "grub-mkimage", "mkfs.vfat", "mkfs.ext4", "sfdisk"} {
		testenv.NeedProgram(t, p)
	}
	repo, err := devvm.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	_, err = devvm.FindBIOS(repo)
	testenv.Need(t, err == nil, "the BIOS device VM disk (scripts/test-setup.d/60-device-vm)")
	_, err = devvm.FindUEFI(repo)
	testenv.Need(t, err == nil, "the UEFI device VM disk (scripts/test-setup.d/60-device-vm)")
	_, err = vmtest.FindKernel()
	testenv.Need(t, err == nil, "the cached VM kernel (scripts/test-setup.d/50-vm-kernel)")
	openbalena.Need(t)

	work, err := os.MkdirTemp("", "e2e-test-")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	// within go test's -timeout (scripts/test: 50m), with time to clean up
	deadline := time.Now().Add(18 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-90 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	res, err := Run(ctx, Options{Repo: repo, Work: work, Kinds: Kinds, Out: &progress, Keep: true, RealAPI: true})
	defer os.RemoveAll(work)
	var table bytes.Buffer
	if res != nil && res.Devices != nil {
		res.WriteTable(&table)
	}
	t.Logf("progress:\n%s\n%s", progress.String(), table.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Done != len(Kinds) || res.Expected != len(Kinds) {
		for _, d := range res.Devices {
			t.Errorf("%s: %v", d.Name, d.Err)
			t.Logf("%s console (last lines):\n%s", d.Name, lastLines(d.VM.Console(), 60))
			t.Logf("%s unit log:\n%s", d.Name, lastLines(readGlob(filepath.Join(d.group.db, "db", "log", "log-"+d.UnitID+"-*")), 40))
		}
	}
	last := strings.TrimSpace(table.String())
	if i := strings.LastIndex(last, "\n"); i >= 0 {
		last = last[i+1:]
	}
	if want := fmt.Sprintf("e2e done=%d expected=%d wall_s=", len(Kinds), len(Kinds)); !strings.HasPrefix(last, want) {
		t.Errorf("last line %q", last)
	}
	// Two requests per registered unit on the migrate side (register,
	// name), against the real server as on the fake.
	registered := 0
	for _, d := range res.Devices {
		if !d.Kind.spec().rehearsal {
			registered++
		}
	}
	if reg, name := res.API.Routes["POST /device/register"], res.API.Routes["PATCH /v7/device(<id>)"]; reg != registered || name != registered {
		t.Errorf("%d registrations and %d namings for %d registered units, want one each: %v", reg, name, registered, res.API.Routes)
	}
}

// TestMaxLooks pins the pacing the e2e run holds migdb-check-done to.
func TestMaxLooks(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{44 * time.Second, 0}, {45 * time.Second, 1}, {67 * time.Second, 1}, {68 * time.Second, 2},
		{112 * time.Second, 2}, {113 * time.Second, 3}, {202 * time.Second, 3}, {203 * time.Second, 4}, {479 * time.Second, 5}} {
		if got := maxLooks(tc.d); got != tc.want {
			t.Errorf("maxLooks(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
