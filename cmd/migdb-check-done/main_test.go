package main

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

var bin string

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "checkdone-bin")
	bin = filepath.Join(dir, "migdb-check-done")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func setup(t *testing.T) (*fakebalena.Server, string, *spool.DB) {
	srv := fakebalena.Start(fakebalena.Config{})
	t.Cleanup(srv.Close)
	srv.AddUser("op", "tok")
	srv.AddApp("org/fleet", "raspberrypi3")
	base := t.TempDir()
	db, err := spool.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := api.New(balena.Options{APIURL: srv.URL(), Token: "tok"})
	for _, id := range []string{"a", "b"} {
		uuid := balena.NewUUID()
		d, err := cl.Register(context.Background(), balena.Registration{Fleet: "org/fleet", UUID: uuid})
		if err != nil {
			t.Fatal(err)
		}
		if id == "a" { // booted balenaOS: its supervisor reports
			if err := supervisor.FirstContact(context.Background(), nil, srv.URL(), uuid, d.Key.Reveal(), supervisor.DefaultState); err != nil {
				t.Fatal(err)
			}
		}
		u, _ := unit.New(id, time.Now())
		u.SetStatus(unit.StatusMigrated, time.Now())
		u.Set(unit.FieldDeviceID, uuid)
		p, _ := db.Add(u)
		os.Rename(p, db.Path(spool.Process, filepath.Base(p)))
	}
	return srv, base, db
}

func cmd(base string, args ...string) *exec.Cmd {
	c := exec.Command(bin, append([]string{"--base", base, "--color", "OFF"}, args...)...)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base}
	return c
}

func TestBadTokenExits2BeforeTouchingUnits(t *testing.T) {
	srv, base, db := setup(t)
	before, _ := os.ReadDir(db.Path(spool.Process))
	out, err := cmd(base, "--balena-api", srv.URL(), "--balena-token", "wrong-secret", "--once").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("err %v, out %s", err, out)
	}
	if !strings.Contains(string(out), "rejected") || strings.Contains(string(out), "wrong-secret") {
		t.Fatalf("message %q", out)
	}
	after, _ := os.ReadDir(db.Path(spool.Process))
	if len(after) != len(before) || srv.Calls(fakebalena.RouteDevice) != 0 {
		t.Fatal("units were touched")
	}
	// No token at all: also 2, naming where it looked.
	out, err = cmd(base, "--balena-api", srv.URL(), "--once").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "token") {
		t.Fatalf("no token: %v %s", err, out)
	}
}

func TestOnceThenStats(t *testing.T) {
	srv, base, db := setup(t)
	out, err := cmd(base, "--balena-api", srv.URL(), "--balena-token", "tok", "--once", "--check-interval", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "tok\"") || strings.Contains(string(out), "=tok") {
		t.Fatal("token in log")
	}
	if m, _ := filepath.Glob(db.Path(spool.Done, "unit-a-*")); len(m) != 1 {
		t.Fatalf("a not done:\n%s", out)
	}
	csvPath := filepath.Join(base, "stats.csv")
	out, err = cmd(base, "--stats", "-o", csvPath).CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, want := range []string{"done     1", "process  1", "total    2", "heartbeat  1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	data, _ := os.ReadFile(csvPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || lines[0] != "id,state,fail_class,conn_attempts,created,last_change,duration_s,device_id,fail_msg,device_type,preflight,rehearsal,online_by" ||
		!strings.HasPrefix(lines[1], "a,done,") || !strings.HasSuffix(lines[1], ",heartbeat") {
		t.Fatalf("csv:\n%s", data)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	srv, base, db := setup(t)
	c := cmd(base, "--balena-api", srv.URL(), "--balena-token", "tok")
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, _ := filepath.Glob(db.Path(spool.Done, "unit-a-*")); len(m) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a never done:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); err != nil {
		t.Fatalf("exit %v\n%s", err, out.String())
	}
	if left, _ := os.ReadDir(db.Path(spool.Tmp)); len(left) != 0 {
		t.Fatalf("tmp/ holds %v", left)
	}
}

// TestSelfHostedBalenaBehindItsOwnCA: the API and token found as the
// balena CLI finds them (BALENARC_BALENA_URL, BALENA_API_KEY), over TLS
// with a certificate from a private CA that SSL_CERT_FILE names.
func TestSelfHostedBalenaBehindItsOwnCA(t *testing.T) {
	_, base, _ := setup(t) // units to check; their devices are unknown to the self-hosted API
	api := fakebalena.New(fakebalena.Config{})
	api.AddUser("op", "self-hosted-secret")
	api.AddApp("org/fleet", "raspberrypi3")
	srv := httptest.NewTLSServer(api.Handler())
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)

	run := func(env ...string) (int, string) {
		c := cmd(base, "--once")
		c.Env = append(c.Env, env...)
		out, err := c.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	found := []string{"BALENARC_BALENA_URL=" + srv.URL, "BALENA_API_KEY=self-hosted-secret"}
	if code, out := run(found...); code != 2 || !strings.Contains(out, "SSL_CERT_FILE") {
		t.Fatalf("without the CA: exit %d: %s", code, out)
	}
	code, out := run(append(found, "SSL_CERT_FILE="+ca)...)
	if code != 0 || !strings.Contains(out, srv.URL) || !strings.Contains(out, "BALENARC_BALENA_URL") {
		t.Fatalf("with the CA: exit %d: %s", code, out)
	}
	if api.Calls(fakebalena.RouteDevice) == 0 {
		t.Fatal("the worker did not ask the self-hosted API about its units")
	}
	if strings.Contains(out, "self-hosted-secret") {
		t.Fatal("the token reached the log")
	}
}
