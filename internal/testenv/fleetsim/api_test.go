package fleetsim

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAPIUseSummaries(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	var u APIUse
	data := `{"Calls":{"PATCH /device/v3/state":3,"POST /device/register":3,"GET /v7/device":5},
		"Keys":[{"expires":"2026-01-02T03:08:00Z","valid":true},{"expires":"2026-01-02T03:10:00Z","valid":true},{"expires":null,"valid":true}]}`
	if err := json.Unmarshal([]byte(data), &u); err != nil {
		t.Fatal(err)
	}
	if n := u.WorkerRequests(); n != 8 {
		t.Errorf("WorkerRequests = %d, want 8 (reports left out)", n)
	}
	want := "3 provisioning keys issued, 1 without expiry; the last expires 10m0s after the run"
	if got := u.KeySummary(now); got != want {
		t.Errorf("KeySummary = %q, want %q", got, want)
	}
}
