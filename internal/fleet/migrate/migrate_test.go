package migrate

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/backoff"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

func TestMigratesDevicesEndToEnd(t *testing.T) {
	e := newEnv(t, sshtest.Config{Password: true})
	keyDev := e.device(sshtest.UserConfig{})
	pwDev := e.device(sshtest.UserConfig{Password: "pa ss$word'1", SudoPassword: true})
	kd := e.unitFor(keyDev)
	pub := osKeyFile(t)
	kd[config.OSSSHKey] = pub
	e.addUnit("key-dev", kd)
	pw := e.unitFor(pwDev)
	pw[config.SSHPasswd] = pwDev.Password
	e.addUnit("pw-dev", pw)

	e.runOnce(e.settings(nil), 2)

	for id, dev := range map[string]*sshtest.User{"key-dev": keyDev, "pw-dev": pwDev} {
		dir, u := e.find(id)
		if dir != spool.Process {
			t.Fatalf("%s in %s: %s %s", id, dir, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
		}
		for _, f := range []string{unit.FieldID, unit.FieldStatus, unit.FieldCreateTS, unit.FieldCreateISOTS,
			unit.FieldStatusTS, unit.FieldMigratedISOTS, unit.FieldDueTS, unit.FieldDeviceID, unit.FieldOutputLog} {
			if u.Get(f) == "" {
				t.Errorf("%s: %s missing", id, f)
			}
		}
		if u.Status() != unit.StatusMigrated || !balena.ValidUUID(u.Get(unit.FieldDeviceID)) {
			t.Errorf("%s: status %s uuid %q", id, u.Status(), u.Get(unit.FieldDeviceID))
		}
		due, _, _ := u.Due()
		if d := time.Until(due); d < 170*time.Second || d > 181*time.Second {
			t.Errorf("%s: DUE_TS %v ahead, want MIG_DURATION 180s", id, d)
		}
		// The device holds the environment byte for byte, modes kept.
		filepath.Walk(e.cfg, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(e.cfg, p)
			want, _ := os.ReadFile(p)
			got, gerr := os.ReadFile(dev.Path(filepath.Join("migrate", rel)))
			st, _ := os.Stat(dev.Path(filepath.Join("migrate", rel)))
			if gerr != nil || !bytes.Equal(got, want) || st.Mode().Perm() != info.Mode().Perm() {
				t.Errorf("%s: %s differs on the device (%v)", id, rel, gerr)
			}
			return nil
		})
		var cfg map[string]any
		data, _ := os.ReadFile(dev.Path("migrate/" + devproto.BalenaConfigName))
		if err := json.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: config.json: %v", id, err)
		}
		if cfg["uuid"] != u.Get(unit.FieldDeviceID) || cfg["deviceApiKey"] == nil || cfg["apiKey"] != nil {
			t.Errorf("%s: config.json uuid %v key %v apiKey %v", id, cfg["uuid"], cfg["deviceApiKey"] != nil, cfg["apiKey"])
		}
		// The operator's lifeline key, for the unit that names one.
		osCfg, _ := cfg["os"].(map[string]any)
		keys, _ := osCfg["sshKeys"].([]any)
		wantKey, _ := os.ReadFile(pub)
		if id == "key-dev" && (len(keys) != 1 || keys[0] != strings.TrimSpace(string(wantKey))) || id == "pw-dev" && len(keys) != 0 {
			t.Errorf("%s: config.json os.sshKeys %v", id, keys)
		}
		if d, ok := e.fake.Device(u.Get(unit.FieldDeviceID)); !ok || d.Name != u.ID() {
			t.Errorf("%s: device registered %v, named %q; want named after the unit", id, ok, d.Name)
		}
		log, _ := os.ReadFile(u.Get(unit.FieldOutputLog))
		if !strings.Contains(string(log), "this is a stand-in: nothing is flashed") || !strings.Contains(string(log), "migration successful") {
			t.Errorf("%s: device output missing from the unit log:\n%s", id, log)
		}
		if strings.Contains(string(log), pwDev.Password) {
			t.Errorf("%s: password in the unit log", id)
		}
	}
	wlog := e.logs.String()
	if !strings.Contains(wlog, "this is a stand-in: nothing is flashed") || strings.Contains(wlog, "checks passed") {
		t.Errorf("worker log should echo WARN/ERROR lines only:\n%s", wlog)
	}
	if strings.Contains(wlog, pwDev.Password) || strings.Contains(wlog, token) {
		t.Error("a secret reached the worker log")
	}
	if len(e.fake.Devices()) != 2 {
		t.Errorf("%d devices registered, want 2", len(e.fake.Devices()))
	}
}

// When balena-migrate asks for the reboot, the worker reboots the device,
// with the argument it names: a tryboot Raspberry Pi boots stage 2 only
// from `reboot "0 tryboot"`, a plain reboot would boot the old system.
func TestPerArchBinaryAndReboot(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	e.cfg = e.environment(t, "balena-migrate-amd64", "balena-migrate-arm64")
	for _, c := range []struct{ mode, want string }{
		{"reboot", "reboot"},
		{"reboot-tryboot", "reboot [0 tryboot]"},
	} {
		write(t, filepath.Join(e.cfg, "MODE"), c.mode+"\n", 0o644)
		dev := e.device(sshtest.UserConfig{})
		e.addUnit(c.mode, e.unitFor(dev))
		e.runOnce(e.settings(nil), 1)
		if dir, u := e.find(c.mode); dir != spool.Process {
			t.Fatalf("%s: in %s: %s", c.mode, dir, u.Get(unit.FieldFailMsg))
		}
		ran, _ := os.ReadFile(dev.Path("migrate/ran-by"))
		if filepath.Base(strings.TrimSpace(string(ran))) != "balena-migrate-amd64" {
			t.Fatalf("%s: ran %q", c.mode, ran)
		}
		deadline := time.Now().Add(10 * time.Second)
		for dev.RebootCalls() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the device was not rebooted", c.mode)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := dev.Reboots(); got[0] != c.want {
			t.Errorf("%s: the device ran %q, want %q", c.mode, got[0], c.want)
		}
	}
}

func TestDeviceFailures(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	cases := []struct {
		name, mode string
		class      devproto.Class
		msg        string
	}{
		{"nospace", "nospace", devproto.ClassNoSpace, "not enough space"},
		{"silent", "silent", devproto.ClassStage1, "without saying"},
		{"hang", "hang", devproto.ClassStage1, "did not finish within"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.fake.Devices())
			defer func() {
				if n := len(e.fake.Devices()); n != before {
					t.Errorf("balena has %d devices after a refused pre-flight, %d before", n, before)
				}
			}()
			e.cfg = e.environment(t, "balena-migrate")
			write(t, filepath.Join(e.cfg, "MODE"), c.mode, 0o644)
			dev := e.device(sshtest.UserConfig{})
			e.addUnit(c.name, e.unitFor(dev))
			e.runOnce(e.settings(map[string]string{config.ExecTimeout: "3"}), 1)
			dir, u := e.find(c.name)
			if dir != spool.Fail || devproto.Class(u.Get(unit.FieldFailClass)) != c.class || !strings.Contains(u.Get(unit.FieldFailMsg), c.msg) {
				t.Fatalf("in %s, class %s, msg %q", dir, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
			}
			// The pre-flight refused: nothing may have been registered.
			if u.Has(unit.FieldDeviceID) || u.Has(unit.FieldStage1TS) {
				t.Errorf("a device refused in the pre-flight got DEVICE_ID %q, STAGE1_TS %q", u.Get(unit.FieldDeviceID), u.Get(unit.FieldStage1TS))
			}
			if !strings.HasPrefix(u.Get(unit.FieldFailMsg), "pre-flight: ") {
				t.Errorf("the failure did not come from the pre-flight: %s", u.Get(unit.FieldFailMsg))
			}
		})
	}
}

func TestConnectionFailures(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	good := e.device(sshtest.UserConfig{})
	wrongKey := e.device(sshtest.UserConfig{Keys: []ssh.PublicKey{mustKey(t)}})

	e.addUnit("refused", map[string]string{config.SSHHost: "127.0.0.1", config.SSHPort: "1", config.SSHUser: good.Name})
	e.addUnit("dns", map[string]string{config.SSHHost: "no-such-device.invalid", config.SSHUser: good.Name})
	e.addUnit("auth", e.unitFor(wrongKey))
	hk := e.unitFor(good)
	badKnown := filepath.Join(t.TempDir(), "known_hosts")
	write(t, badKnown, "[127.0.0.1]:"+hk[config.SSHPort]+" "+string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(mustKey(t))))+"\n", 0o600)
	hk[config.SSHOpts] = "-o UserKnownHostsFile=" + badKnown + " -o StrictHostKeyChecking=accept-new"
	e.addUnit("hostkey", hk)
	e.addUnit("noapp", map[string]string{config.SSHHost: "127.0.0.1", config.App: ""})

	s := e.settings(map[string]string{config.ConnAttempts: "2"})
	e.runOnce(s, 3)

	for _, id := range []string{"refused", "dns"} {
		dir, u := e.find(id)
		due, _, _ := u.Due()
		if dir != spool.Units || u.Get(unit.FieldConnRetries) != "1" || time.Until(due) < 50*time.Second ||
			!strings.HasPrefix(u.Get(unit.FieldTransferFail), id+":") {
			t.Errorf("%s: in %s retries %q due in %v msg %q", id, dir, u.Get(unit.FieldConnRetries), time.Until(due), u.Get(unit.FieldTransferFail))
		}
	}
	for id, class := range map[string]string{"auth": "auth", "hostkey": "host_key", "noapp": "config_error"} {
		if dir, u := e.find(id); dir != spool.Fail || u.Get(unit.FieldFailClass) != class {
			t.Errorf("%s: in %s class %q (%s)", id, dir, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
		}
	}
	// Second attempt of the retried ones: due later, so move their due time.
	for _, id := range []string{"refused", "dns"} {
		found, _ := e.db.Find(id)
		_, u := e.find(id)
		u.SetDue(time.Now().Add(-time.Second))
		data, _ := u.Marshal()
		os.WriteFile(found[0].Path, data, 0o600)
	}
	e.runOnce(s, 2)
	for _, id := range []string{"refused", "dns"} {
		if dir, u := e.find(id); dir != spool.Fail || u.Get(unit.FieldFailClass) != id || u.Get(unit.FieldConnRetries) != "2" {
			t.Errorf("%s after 2 attempts: in %s class %q retries %q", id, dir, u.Get(unit.FieldFailClass), u.Get(unit.FieldConnRetries))
		}
	}
}

func mustKey(t *testing.T) ssh.PublicKey {
	s, err := sshtest.GenerateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func TestBackoff(t *testing.T) {
	for tries, want := range map[int]time.Duration{1: 600 * time.Second, 2: 1200 * time.Second, 3: 2400 * time.Second, 10: 24 * time.Hour} {
		if got := backoff.Doubling(600*time.Second, maxBackoff, tries); got != want {
			t.Errorf("backoff(%d) = %v, want %v", tries, got, want)
		}
	}
}

func TestArchiveEnvironmentFromUnit(t *testing.T) {
	e := newEnv(t, sshtest.Config{NoSFTP: true})
	tgz := filepath.Join(t.TempDir(), "env.tgz")
	if out, err := exec.Command("tar", "czf", tgz, "-C", e.cfg, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dev := e.device(sshtest.UserConfig{})
	fields := e.unitFor(dev)
	fields[config.CfgArchive] = tgz // the unit's archive beats the worker's directory
	e.addUnit("tgz", fields)
	e.runOnce(e.settings(nil), 1)
	if dir, u := e.find("tgz"); dir != spool.Process {
		t.Fatalf("in %s: %s", dir, u.Get(unit.FieldFailMsg))
	}
	want, _ := os.ReadFile(filepath.Join(e.cfg, "resin-genericx86-64-ext.img.gz"))
	got, err := os.ReadFile(dev.Path("migrate/resin-genericx86-64-ext.img.gz"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("image differs on the device (%v)", err)
	}
}
