package checkdone

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/migrate"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

// TestRehearsal runs a rehearsal as an operator would: migdb-migrate
// --rehearsal with an environment whose stage 2 does not flash, then
// migdb-check-done, against real sshd device users and the fake API.
func TestRehearsal(t *testing.T) {
	srv := sshtest.New(t, sshtest.Config{})
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	standin, err := os.ReadFile("../../testenv/fleetsim/balena-migrate-standin")
	if err != nil {
		t.Fatal(err)
	}
	envDir := filepath.Join(dir, "env")
	os.MkdirAll(envDir, 0o755)
	os.WriteFile(filepath.Join(envDir, "balena-migrate"), standin, 0o755)
	os.WriteFile(filepath.Join(envDir, "resin-genericx86-64.img.gz"), make([]byte, 1<<20), 0o644)
	os.WriteFile(filepath.Join(envDir, "balena-migrate.conf"), []byte("IMAGE_NAME=resin-genericx86-64.img.gz\nNO_FLASH=TRUE\n"), 0o644)

	e := newEnv(t, nil)
	devices := map[string]*sshtest.User{}
	for _, id := range []string{"good", "refused"} {
		u, err := srv.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()},
			Sudo: []string{"/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate"}})
		if err != nil {
			t.Fatal(err)
		}
		devices[id] = u
		un, _ := unit.New(id, time.Now())
		un.Set(config.SSHHost, srv.Host)
		un.Set(config.SSHPort, strconv.Itoa(srv.Port))
		un.Set(config.SSHUser, u.Name)
		if _, err := e.db.Add(un); err != nil {
			t.Fatal(err)
		}
	}
	// The second device's stage 2 finds a corrupt image and refuses.
	os.MkdirAll(devices["refused"].Path("migrate"), 0o755)
	os.WriteFile(devices["refused"].Path("migrate/STAGE2_SAYS"), []byte("[ts balena-migrate] ERROR: failed (stage2): image checksum mismatch\n"), 0o644)
	exec.Command("chown", "-R", devices["refused"].Name, devices["refused"].Path("migrate")).Run()

	known := filepath.Join(dir, "known_hosts")
	common := map[string]string{config.SSHKey: key, config.KnownHosts: known, config.ConnTimeout: "5"}
	mig := map[string]string{config.App: "org/fleet", config.BalenaVer: "2.113.0", config.CfgDir: envDir,
		config.Rehearsal: "true", config.Duration: "0", config.ExecTimeout: "20"}
	for k, v := range common {
		mig[k] = v
	}
	ms, err := config.Resolve(config.Migrate, config.Layer{Source: "test", Values: mig})
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t))
	m := &migrate.Migrator{Cloud: e.cloud, Settings: ms, Log: log, Now: time.Now}
	ml := &worker.Loop{DB: e.db, Input: spool.Units, Name: "migrate", Jobs: 2, Once: true, DueOf: m.DueOf, Log: log, Handle: m.Handle}
	if err := ml.Run(context.Background(), context.Background()); err != nil {
		t.Fatal(err)
	}
	for id := range devices {
		if d, u := e.find(t, id); d != spool.Process || u.Status() != unit.StatusRehearsing || u.Has(unit.FieldDeviceID) {
			t.Fatalf("%s after migdb-migrate --rehearsal: in %s, STATUS %s, DEVICE_ID %q: %s", id, d, u.Status(), u.Get(unit.FieldDeviceID), u.Get(unit.FieldFailMsg))
		}
	}

	cs, err := config.Resolve(config.CheckDone, config.Layer{Source: "test", Values: common})
	if err != nil {
		t.Fatal(err)
	}
	e.k.Settings = cs
	deadline := time.Now().Add(20 * time.Second)
	for {
		e.runOnce(t)
		gd, _ := e.find(t, "good")
		rd, _ := e.find(t, "refused")
		if gd != spool.Process && rd != spool.Process || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
		// Looked at again at once, not after the check interval.
		for _, id := range []string{"good", "refused"} {
			if found, _ := e.db.Find(id); len(found) == 1 && found[0].Dir == spool.Process {
				data, _ := os.ReadFile(found[0].Path)
				u, _ := unit.Parse(data)
				u.SetDue(time.Now().Add(-time.Second))
				out, _ := u.Marshal()
				os.WriteFile(found[0].Path, out, 0o600)
			}
		}
	}
	if d, u := e.find(t, "good"); d != spool.Units || u.Get(unit.FieldRehearsal) != "ok" || u.Status() != unit.StatusInit {
		t.Errorf("good: in %s REHEARSAL=%q (%s) STATUS %s", d, u.Get(unit.FieldRehearsal), u.Get(unit.FieldRehearsalMsg), u.Status())
	}
	if d, u := e.find(t, "refused"); d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassRehearsal) ||
		u.Get(unit.FieldRehearsal) != "failed" || !strings.Contains(u.Get(unit.FieldFailMsg), "image checksum mismatch") {
		t.Errorf("refused: in %s class %q REHEARSAL=%q: %s", d, u.Get(unit.FieldFailClass), u.Get(unit.FieldRehearsal), u.Get(unit.FieldFailMsg))
	}
	if n := len(e.fake.Devices()); n != 0 {
		t.Errorf("a rehearsal registered %d devices in balena", n)
	}
}

// TestStage2RefusalIsNotLost: a migrated device that never comes online
// but is back on its old system with stage 2's refusal in its log fails
// as stage2, with the reason, when it would otherwise be called lost.
func TestStage2RefusalIsNotLost(t *testing.T) {
	srv := sshtest.New(t, sshtest.Config{})
	key := filepath.Join(t.TempDir(), "id")
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := srv.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dev.Path("migrate"), 0o755)
	os.WriteFile(dev.Path("migrate/balena-migrate-stage2.log"), []byte(
		"[ts balena-migrate] INFO: verifying the image\n[ts balena-migrate] ERROR: image checksum mismatch: expected 1f2e, got 9a0b\n"+
			"[ts balena-migrate] ERROR: stage 2 stopped before flashing; the disk is untouched\n"), 0o644)
	exec.Command("chown", "-R", dev.Name, dev.Path("migrate")).Run()

	e := newEnv(t, map[string]string{config.MaxStatusAge: "600", config.SSHKey: key,
		config.KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), config.ConnTimeout: "5"})
	e.migrated(t, "refused", time.Hour, "")
	found, _ := e.db.Find("refused")
	_, u := e.find(t, "refused")
	u.Set(config.SSHHost, srv.Host)
	u.Set(config.SSHPort, strconv.Itoa(srv.Port))
	u.Set(config.SSHUser, dev.Name)
	data, _ := u.Marshal()
	os.WriteFile(found[0].Path, data, 0o600)

	e.runOnce(t)
	d, u := e.find(t, "refused")
	if d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassStage2) || !strings.Contains(u.Get(unit.FieldFailMsg), "image checksum mismatch") {
		t.Fatalf("in %s class %q: %s", d, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
	}
}
