package fakebalena

import (
	"context"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

// The fake's online follows the real API's rules: a state GET or PATCH
// with the device's key is a heartbeat, online for 1.5 poll intervals,
// then timeout for HeartbeatTimeout, then offline; is_online is the VPN's
// and only a VPN connect (or a PATCH saying so) sets it.
func TestHeartbeatFollowsTheRealRules(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, app, _ := seeded(t, Config{Now: clk.now, PollInterval: time.Minute, HeartbeatTimeout: 20 * time.Second})
	uuid := "4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c"
	key := registeredWithKey(t, s, app, uuid)
	ctx := context.Background()
	steps := []struct {
		name      string
		do        func() error
		advance   time.Duration
		heartbeat string
		online    bool
	}{
		{"registered", nil, 0, "unknown", false},
		{"a state GET alone", func() error { return supervisor.GetState(ctx, nil, s.URL(), uuid, key) }, 0, "online", true},
		{"just inside 1.5 poll intervals", nil, 89 * time.Second, "online", true},
		{"past 1.5 poll intervals", nil, time.Second, "timeout", false},
		{"past the timeout", nil, 20 * time.Second, "offline", false},
		{"a state PATCH", func() error {
			return supervisor.PatchState(ctx, nil, s.URL(), uuid, key, supervisor.DefaultState)
		}, 0, "online", true},
		{"offline again", nil, 2 * time.Minute, "offline", false},
		{"VPN connected", func() error { return s.SetVPN(uuid, true) }, 0, "offline", true},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if st.do != nil {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		if hb := s.Heartbeat(uuid); hb != st.heartbeat || s.Online(uuid) != st.online {
			t.Errorf("%s: heartbeat %q online %v, want %q %v", st.name, hb, s.Online(uuid), st.heartbeat, st.online)
		}
	}
	d, _ := s.Device(uuid)
	if d.OSVersion != supervisor.DefaultState.OSVersion || d.SupervisorVersion != supervisor.DefaultState.SupervisorVersion || !d.VPN {
		t.Errorf("device after its reports: %+v", d)
	}
	// Another device's key is refused and is no heartbeat.
	other := "5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d"
	registeredWithKey(t, s, app, other)
	if err := supervisor.GetState(ctx, nil, s.URL(), other, key); err == nil || s.Heartbeat(other) != "unknown" {
		t.Errorf("state GET with another device's key: %v, heartbeat %q", err, s.Heartbeat(other))
	}
}
