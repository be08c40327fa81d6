package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// TestSimulatedFleetEndToEnd is the demo in miniature: real sshd devices,
// the fake API as a process, real worker binaries; every unit must end in
// done/ and nothing may be left behind.
func TestSimulatedFleetEndToEnd(t *testing.T) {
	testenv.NeedRoot(t, "creates device users")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/migdb-add-unit", "../../../cmd/migdb-migrate",
		"../../../cmd/migdb-check-done", "../../../cmd/dev/fake-balena-api")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var progress bytes.Buffer
	f, err := Start(Options{Bin: bin, Repo: "../../..", Units: 3, MigrateProcs: 2, CheckProcs: 1, Jobs: 2,
		OnlineDelay: time.Second, Duration: time.Second, Interval: time.Second, Out: &progress})
	if err != nil {
		t.Fatal(err)
	}
	work := f.Work
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	if err := f.Submit(); err != nil {
		t.Fatal(err)
	}
	if err := f.StartWorkers(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := f.Wait(ctx, 200*time.Millisecond); err != nil {
		logs, _ := exec.Command("sh", "-c", "tail -n 20 "+filepath.Join(work, "logs")+"/*").CombinedOutput()
		t.Fatalf("%v\n%s\n%s", err, progress.String(), logs)
	}
	if c := f.Counts(); c[spool.Done] != 3 || c[spool.Fail]+c[spool.Process]+c[spool.Units]+c[spool.Tmp] != 0 {
		t.Fatalf("counts %v", c)
	}
	// Online only by their own report: the fake has no other way.
	resp, err := http.Get(f.URL + "/_fake/devices")
	if err != nil {
		t.Fatal(err)
	}
	var devices []struct {
		Online  bool `json:"is_online"`
		Reports int  `json:"reports"`
	}
	err = json.NewDecoder(resp.Body).Decode(&devices)
	resp.Body.Close()
	if err != nil || len(devices) != 3 {
		t.Fatalf("fake's devices: %+v (%v)", devices, err)
	}
	for i, d := range devices {
		if !d.Online || d.Reports < 1 {
			t.Errorf("device %d: online %v after %d reports of its own", i, d.Online, d.Reports)
		}
	}
	// Round trips: a constant per worker (the start-up fleet check: the
	// fleet, a provisioning key, the OS release list, the config template,
	// the device types, as the environment's image names one)
	// plus two per unit on the migrate side (register, name) and four
	// dashboard phases per unit (registered, stage 1, rebooting; flashed,
	// from check-done); check-done asks GET /v7/device per poll.
	use, err := f.APIUse()
	if err != nil {
		t.Fatal(err)
	}
	migrateSide := use.WorkerRequests() - use.Calls["GET /v7/device"] - use.Calls["GET /actor/v1/whoami"]
	if perWorker, phases := 5, 4; migrateSide > (2+phases)*3+perWorker*2 { // 2 migrate workers
		t.Errorf("migrate side made %d requests for 3 units: %v", migrateSide, use.Calls)
	}
	// No provisioning key without expiry, none valid beyond ~10 minutes.
	for _, k := range use.Keys {
		if k.Expires == nil || time.Until(*k.Expires) > 11*time.Minute {
			t.Errorf("provisioning key expiring %v: %v", k.Expires, use.Keys)
		}
	}
	if len(use.Keys) == 0 || len(use.Keys) > 4 {
		t.Errorf("%d provisioning keys for 3 units and 2 migrate workers; want 1 to 4, not one per device", len(use.Keys))
	}
	if !strings.Contains(progress.String(), "migdb-add-unit") {
		t.Errorf("progress does not show the commands:\n%s", progress.String())
	}
	f.Close()
	closed = true
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory %s left behind", work)
	}
	if out, _ := exec.Command("pgrep", "-f", bin).Output(); len(out) > 0 {
		t.Errorf("processes left running: %s", out)
	}
}
