package checkdone

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

// Online as balena means it: by heartbeat (the supervisor's own requests)
// or by VPN; done only when healthy (the image's OS version, a supervisor
// version, the type it was registered as), else failed with a precise
// class once --max-age has passed; --tag-devices tags the verdict.
func TestOnlineByHeartbeatOrVPNAndHealthy(t *testing.T) {
	e := newEnv(t, map[string]string{config.MaxStatusAge: "600", config.CheckInterval: "30", config.TagDevices: "true"})
	ok := supervisor.State{OSVersion: "balenaOS 2.113.0", SupervisorVersion: "17.0.3", Status: "Idle"}
	oldOS := ok
	oldOS.OSVersion = "balenaOS 2.101.7"
	noSupervisor := ok
	noSupervisor.SupervisorVersion = ""
	cases := []struct {
		id       string
		age      time.Duration
		report   *supervisor.State
		vpn      bool
		dir      spool.Dir
		class    string
		onlineBy string
		tag      string
		logs     string // in the unit log
	}{
		{"heartbeat", time.Minute, &ok, false, spool.Done, "", "heartbeat", "done", "its VPN is not up"},
		{"vpn", time.Minute, &ok, true, spool.Done, "", "vpn", "done", "by vpn"},
		{"silent", time.Minute, nil, false, spool.Process, "", "", "", "not online yet"},
		{"silent-late", time.Hour, nil, false, spool.Fail, "lost", "", "lost", "not online"},
		{"old-os", time.Minute, &oldOS, false, spool.Process, "", "", "", `runs "balenaOS 2.101.7"`},
		{"old-os-late", time.Hour, &oldOS, false, spool.Fail, "wrong_os", "", "wrong_os", "not the image's balenaOS 2.113.0"},
		{"no-supervisor-late", time.Hour, &noSupervisor, false, spool.Fail, "no_supervisor", "", "no_supervisor", "no supervisor version"},
	}
	for _, c := range cases {
		uuid := e.migrated(t, c.id, c.age, "")
		e.setUnit(t, c.id, config.BalenaVer, "2.113.0")
		if c.report != nil {
			e.boot(t, uuid, *c.report)
		}
		if c.vpn {
			if err := e.fake.SetVPN(uuid, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.runOnce(t)
	for _, c := range cases {
		dir, u := e.find(t, c.id)
		if dir != c.dir || u.Get(unit.FieldFailClass) != c.class || u.Get(unit.FieldOnlineBy) != c.onlineBy {
			t.Errorf("%s: in %s class %q ONLINE_BY %q, want %s %q %q (%s)", c.id, dir, u.Get(unit.FieldFailClass),
				u.Get(unit.FieldOnlineBy), c.dir, c.class, c.onlineBy, u.Get(unit.FieldFailMsg))
		}
		if c.onlineBy != "" && u.Get(unit.FieldOnlineTS) == "" {
			t.Errorf("%s: no ONLINE_TS", c.id)
		}
		if log := readLog(t, u); !strings.Contains(log, c.logs) {
			t.Errorf("%s: unit log lacks %q:\n%s", c.id, c.logs, log)
		}
		d, _ := e.fake.Device(u.Get(unit.FieldDeviceID))
		if d.Tags[ResultTag] != c.tag {
			t.Errorf("%s: tag %s=%q, want %q", c.id, ResultTag, d.Tags[ResultTag], c.tag)
		}
		if flashed := d.ProvisioningState == balena.ProgressState("flashed; balenaOS is online"); flashed != (c.dir == spool.Done) {
			t.Errorf("%s: the dashboard shows %q", c.id, d.ProvisioningState)
		}
	}
}

// setUnit rewrites one field of a unit in process/.
func (e *env) setUnit(t *testing.T, id, key, value string) {
	t.Helper()
	found, err := e.db.Find(id)
	if err != nil || len(found) != 1 {
		t.Fatalf("unit %s: %v %v", id, found, err)
	}
	_, u := e.find(t, id)
	u.Set(key, value)
	data, _ := u.Marshal()
	if err := os.WriteFile(found[0].Path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUnhealthy(t *testing.T) {
	good := balena.DeviceStatus{Heartbeat: "online", OSVersion: "balenaOS 2.113.0+rev1", SupervisorVersion: "17.0.3", DeviceType: "raspberrypi4-64"}
	for _, c := range []struct {
		name  string
		st    func(balena.DeviceStatus) balena.DeviceStatus
		want  string
		class string
	}{
		{"healthy", func(s balena.DeviceStatus) balena.DeviceStatus { return s }, "", ""},
		{"no supervisor", func(s balena.DeviceStatus) balena.DeviceStatus { s.SupervisorVersion = ""; return s }, "", "no_supervisor"},
		{"no OS", func(s balena.DeviceStatus) balena.DeviceStatus { s.OSVersion = ""; return s }, "", "wrong_os"},
		{"other OS", func(s balena.DeviceStatus) balena.DeviceStatus { s.OSVersion = "balenaOS 2.112.0"; return s }, "", "wrong_os"},
		{"other type", func(s balena.DeviceStatus) balena.DeviceStatus { s.DeviceType = "raspberrypi3"; return s }, "", "wrong_device_type"},
	} {
		class, why := unhealthy(c.st(good), "v2.113.0", "raspberrypi4-64")
		if string(class) != c.class || (class != "") != (why != "") {
			t.Errorf("%s: %q %q, want class %q", c.name, class, why, c.class)
		}
	}
}
