package migrate

import (
	"os"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

// A unit that names its device by an ssh_config alias is migrated through
// the bastion that config names: the device's sshd is reachable only from
// the bastion's network, and the worker is given nothing but -F.
func TestMigratesThroughBastion(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	b := sshtest.NewBastion(t, t.TempDir(), "", sshtest.UserConfig{Sudo: []string{
		"/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate", "/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate-amd64"}})
	e.addUnit("behind-bastion", map[string]string{config.SSHHost: "dev-1"})

	e.runOnce(e.settings(map[string]string{config.KnownHosts: b.KnownHosts, config.DefSSHOpts: "-F " + b.SSHConfig}), 1)

	dir, u := e.find("behind-bastion")
	if dir != spool.Process || u.Status() != unit.StatusMigrated {
		t.Fatalf("unit in %s, status %s: %s %s", dir, u.Status(), u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
	}
	if _, err := os.Stat(b.Login.User.Path("migrate/" + devproto.BalenaConfigName)); err != nil {
		t.Errorf("config.json not on the hidden device: %v", err)
	}
	if ran, err := os.ReadFile(b.Login.User.Path("migrate/ran-by")); err != nil || !strings.Contains(string(ran), "balena-migrate") {
		t.Errorf("stage 1 did not run on the hidden device: %q, %v", ran, err)
	}
	log, _ := os.ReadFile(u.Get(unit.FieldOutputLog))
	if !strings.Contains(string(log), "via bastion") {
		t.Errorf("the unit log does not say the connection went via the bastion:\n%s", log)
	}
}
