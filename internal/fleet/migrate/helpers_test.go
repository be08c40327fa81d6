package migrate

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

const token = "fleet-token"

// standIn is the stage-1 stand-in the demo uses too.
var standIn = func() string {
	data, err := os.ReadFile("../../testenv/fleetsim/balena-migrate-standin")
	if err != nil {
		panic(err)
	}
	return string(data)
}()

type env struct {
	t      *testing.T
	ssh    *sshtest.Server
	fake   *fakebalena.Server
	cloud  balena.Cloud
	db     *spool.DB
	key    string // client private key file
	signer ssh.Signer
	known  string // known_hosts
	cfg    string // migration environment dir
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, sshCfg sshtest.Config) *env {
	t.Helper()
	e := &env{t: t, ssh: sshtest.New(t, sshCfg), logs: &syncBuffer{}}
	e.fake = fakebalena.Start(fakebalena.Config{})
	t.Cleanup(e.fake.Close)
	e.fake.AddUser("op", token)
	e.fake.AddApp("org/fleet", "genericx86-64-ext")
	var err error
	e.cloud, err = api.New(balena.Options{APIURL: e.fake.URL(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.db, err = spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.key = filepath.Join(dir, "id_ed25519")
	if e.signer, err = sshtest.GenerateKey(e.key); err != nil {
		t.Fatal(err)
	}
	e.known = filepath.Join(dir, "known_hosts")
	e.cfg = e.environment(t, "balena-migrate")
	return e
}

// environment builds a migration environment with the stand-in under the
// given names, a 3 MiB random image and a nested file.
func (e *env) environment(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for _, n := range names {
		write(t, filepath.Join(dir, n), standIn, 0o755)
	}
	img := make([]byte, 3<<20)
	rand.Read(img)
	write(t, filepath.Join(dir, "resin-genericx86-64-ext.img.gz"), string(img), 0o644)
	write(t, filepath.Join(dir, "balena-migrate.conf"), "IMAGE_NAME=resin-genericx86-64-ext.img.gz\nNO_FLASH=FALSE\n", 0o640)
	write(t, filepath.Join(dir, "nm", "resin-wifi-01"), "[connection]\nid=w\n", 0o600)
	return dir
}

func write(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
}

func (e *env) pub() ssh.PublicKey { return e.signer.PublicKey() }

// device creates a device user allowed to sudo only the migration binaries.
func (e *env) device(cfg sshtest.UserConfig) *sshtest.User {
	e.t.Helper()
	if cfg.Keys == nil && cfg.Password == "" {
		cfg.Keys = []ssh.PublicKey{e.pub()}
	}
	cfg.Sudo = append(cfg.Sudo, "/home/"+sshtest.UserPrefix+"*/migrate/balena-migrate", "/home/"+sshtest.UserPrefix+"*/migrate/balena-migrate-amd64")
	u, err := e.ssh.AddUser(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// settings are the worker's settings with overrides.
func (e *env) settings(over map[string]string) *config.Settings {
	vals := map[string]string{
		config.App: "org/fleet", config.BalenaVer: "2.113.0", config.CfgDir: e.cfg,
		config.SSHKey: e.key, config.KnownHosts: e.known, config.ConnTimeout: "5",
		config.ExecTimeout: "20", config.ReconnTime: "60", config.Duration: "180",
	}
	for k, v := range over {
		vals[k] = v
	}
	s, err := config.Resolve(config.Migrate, config.Layer{Source: "test", Values: vals})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// addUnit submits a unit for a device user with extra fields.
func (e *env) addUnit(id string, fields map[string]string) {
	e.t.Helper()
	u, _ := unit.New(id, time.Now())
	for k, v := range fields {
		if err := u.Set(k, v); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.db.Add(u); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) unitFor(dev *sshtest.User) map[string]string {
	return map[string]string{config.SSHHost: e.ssh.Host, config.SSHPort: strconv.Itoa(e.ssh.Port), config.SSHUser: dev.Name}
}

// runOnce drains units/ with one worker process-equivalent.
func (e *env) runOnce(s *config.Settings, jobs int) {
	e.t.Helper()
	log := zerolog.New(e.logs)
	m := &Migrator{Cloud: e.cloud, Settings: s, Log: log, Now: time.Now}
	l := &worker.Loop{DB: e.db, Input: spool.Units, Name: "test", Jobs: jobs, Once: true, DueOf: m.DueOf, Log: log, Handle: m.Handle}
	ctx := context.Background()
	if err := l.Run(ctx, ctx); err != nil {
		e.t.Fatal(err)
	}
	if left, _ := os.ReadDir(e.db.Path(spool.Tmp)); len(left) != 0 {
		e.t.Fatalf("tmp/ holds %v", left)
	}
}

// find returns where unit id is and its parsed file.
func (e *env) find(id string) (spool.Dir, *unit.Unit) {
	e.t.Helper()
	found, err := e.db.Find(id)
	if err != nil || len(found) != 1 {
		e.t.Fatalf("unit %s found in %v (%v)", id, found, err)
	}
	data, _ := os.ReadFile(found[0].Path)
	u, err := unit.Parse(data)
	if err != nil {
		e.t.Fatal(err)
	}
	return found[0].Dir, u
}
