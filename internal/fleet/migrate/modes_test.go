package migrate

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/session"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"github.com/rs/zerolog"
)

// boards answer the probe of some device users as other hardware would:
// this host is an x86 PC, and a Raspberry Pi is what it cannot be. The OS,
// space and boot id parts of the answer stay the real device's.
type boards map[string]string // SSH user → board part of the probe's output

const (
	pi4Board = "@machine\naarch64\n@efi\n@model\nRaspberry Pi 4 Model B Rev 1.4\n@cpuinfo\nRevision\t: c03114\n"
	pi3Board = "@machine\narmv7l\n@efi\n@model\nRaspberry Pi 3 Model B Rev 1.2\n@cpuinfo\nRevision\t: a02082\n"
)

type boardDevice struct {
	Device
	board string
}

func (b boardDevice) Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	out, err := b.Device.Output(ctx, cmd, stdin)
	if err != nil || cmd != probeScript {
		return out, err
	}
	_, fleet, _ := strings.Cut(string(out), "\n@@fleet\n")
	return []byte(b.board + "\n@@fleet\n" + fleet), nil
}

func (bs boards) dial(ctx context.Context, o remote.Options) (Device, error) {
	c, err := remote.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	if b, ok := bs[o.User]; ok {
		return boardDevice{Device: c, board: b}, nil
	}
	return c, nil
}

// runWith drains units/ once with a Migrator given its settings and boards.
func (e *env) runWith(s *config.Settings, bs boards) {
	e.t.Helper()
	log := zerolog.New(e.logs)
	m := &Migrator{Cloud: e.cloud, Settings: s, Log: log, Now: time.Now, Devices: session.Opener[Device]{Dial: bs.dial}}
	l := &worker.Loop{DB: e.db, Input: spool.Units, Name: "test", Jobs: 3, Once: true, DueOf: m.DueOf, Log: log, Handle: m.Handle}
	if err := l.Run(context.Background(), context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// typedEnv writes one environment per sub-directory: the stand-in and a
// balena-migrate.conf naming an image for slug.
func typedEnv(t *testing.T, subs map[string]string, conf string) string {
	root := t.TempDir()
	for sub, slug := range subs {
		write(t, filepath.Join(root, sub, "balena-migrate"), standIn, 0o755)
		write(t, filepath.Join(root, sub, "balena-"+slug+"-2.113.0.img.gz"), "image for "+slug, 0o644)
		write(t, filepath.Join(root, sub, "balena-migrate.conf"), "IMAGE_NAME=balena-"+slug+"-2.113.0.img.gz\n"+conf, 0o640)
	}
	return root
}

func TestWrongBoardRefusedBeforeUpload(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	dev := e.device(sshtest.UserConfig{})
	e.addUnit("pi", e.unitFor(dev))
	e.runWith(e.settings(nil), boards{dev.Name: pi4Board}) // the environment holds a genericx86-64-ext image
	dir, u := e.find("pi")
	if dir != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassDeviceType) {
		t.Fatalf("in %s, class %q: %s", dir, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
	}
	if !strings.Contains(u.Get(unit.FieldFailMsg), "Raspberry Pi 4") || u.Has(unit.FieldDeviceID) {
		t.Errorf("message %q, DEVICE_ID %q", u.Get(unit.FieldFailMsg), u.Get(unit.FieldDeviceID))
	}
	if _, err := os.Stat(dev.Path(devproto.Dir)); !os.IsNotExist(err) {
		t.Errorf("something was uploaded to the refused device (%v)", err)
	}
	if n := len(e.fake.Devices()); n != 0 {
		t.Errorf("balena has %d devices", n)
	}
}

func TestMixedFleetGetsEachDevicesOwnEnvironmentAndType(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	e.cfg = typedEnv(t, map[string]string{"raspberrypi4-64": "raspberrypi4-64", "raspberrypi3": "raspberrypi3", "x86_64": "genericx86-64-ext"}, "NO_FLASH=FALSE\n")
	pi4, pi3, pc := e.device(sshtest.UserConfig{}), e.device(sshtest.UserConfig{}), e.device(sshtest.UserConfig{})
	want := map[string]struct {
		user *sshtest.User
		slug string
	}{"pi4": {pi4, "raspberrypi4-64"}, "pi3": {pi3, "raspberrypi3"}, "pc": {pc, "genericx86-64-ext"}}
	// Both Pis join a raspberrypi3 fleet (a Pi 4 runs its releases); the
	// PC goes to a fleet of its own.
	e.fake.AddApp("org/pis", "raspberrypi3")
	e.fake.AddApp("org/pcs", "genericx86-64-ext")
	for id, w := range want {
		fields := e.unitFor(w.user)
		fields[config.App] = "org/pis"
		if id == "pc" {
			fields[config.App] = "org/pcs"
		}
		e.addUnit(id, fields)
	}
	e.runWith(e.settings(map[string]string{config.TagDevices: "true"}), boards{pi4.Name: pi4Board, pi3.Name: pi3Board})
	for id, w := range want {
		dir, u := e.find(id)
		if dir != spool.Process {
			t.Errorf("%s: in %s: %s", id, dir, u.Get(unit.FieldFailMsg))
			continue
		}
		if got := u.Get(unit.FieldDeviceType); got != w.slug {
			t.Errorf("%s: DEVICE_TYPE %q, want %q", id, got, w.slug)
		}
		if d, ok := e.fake.Device(u.Get(unit.FieldDeviceID)); !ok || d.DeviceType != w.slug || d.Name != id || d.Tags["migdb_unit"] != id || d.Tags["migdb_host"] != e.ssh.Host {
			t.Errorf("%s: balena has %+v", id, d)
		}
		// The dashboard shows the last phase: the reboot into stage 2.
		if d, _ := e.fake.Device(u.Get(unit.FieldDeviceID)); d.ProvisioningState != balena.ProgressState(phases["reboot"].state) ||
			d.ProvisioningProgress == nil || *d.ProvisioningProgress != 80 {
			t.Errorf("%s: the dashboard shows %q %v", id, d.ProvisioningState, d.ProvisioningProgress)
		}
		if _, err := os.Stat(w.user.Path(devproto.Dir + "/balena-" + w.slug + "-2.113.0.img.gz")); err != nil {
			t.Errorf("%s: its image is not on the device: %v", id, err)
		}
		if imgs, _ := filepath.Glob(w.user.Path(devproto.Dir + "/balena-*.img.gz")); len(imgs) != 1 {
			t.Errorf("%s: the device got images %v", id, imgs)
		}
	}
	if !strings.Contains(e.logs.String(), "sub-directory raspberrypi4-64/ for this Raspberry Pi 4") {
		t.Error("the worker log does not say which environment a device got")
	}
}

func TestPretendRegistersNothing(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	dev := e.device(sshtest.UserConfig{})
	e.addUnit("dry", e.unitFor(dev))
	s := e.settings(map[string]string{config.Pretend: "yes"})
	e.runWith(s, nil)
	dir, u := e.find("dry")
	if dir != spool.Units || u.Get(unit.FieldPreflight) != "ok" || u.Has(unit.FieldDeviceID) || u.Has(unit.FieldStage1TS) {
		t.Fatalf("in %s PREFLIGHT=%q (%s) DEVICE_ID=%q", dir, u.Get(unit.FieldPreflight), u.Get(unit.FieldPreflightMsg), u.Get(unit.FieldDeviceID))
	}
	if n := len(e.fake.Devices()); n != 0 {
		t.Errorf("balena has %d devices after a pre-flight", n)
	}
	if _, err := os.Stat(dev.Path(devproto.Dir + "/" + devproto.BalenaConfigName)); !os.IsNotExist(err) {
		t.Errorf("a config.json reached the device in a pre-flight (%v)", err)
	}
	// Where the fleet's devices will talk to went beside balena-migrate,
	// for it to probe; nothing else of the fleet's config (no key).
	var eps map[string]any
	data, _ := os.ReadFile(dev.Path(devproto.Dir + "/" + devproto.EndpointsName))
	if err := json.Unmarshal(data, &eps); err != nil || eps["apiEndpoint"] != e.fake.URL() {
		t.Errorf("%s on the device: %s (%v)", devproto.EndpointsName, data, err)
	}
	for k := range eps {
		if !slices.Contains(endpointKeys, k) {
			t.Errorf("%s holds %s", devproto.EndpointsName, k)
		}
	}
	// The same worker does not take the unit again.
	stamp := u.Get(unit.FieldPreflightISOTS)
	time.Sleep(1100 * time.Millisecond)
	e.runWith(s, nil)
	if _, u := e.find("dry"); u.Get(unit.FieldPreflightISOTS) != stamp {
		t.Error("the pre-flight ran twice for one unit")
	}
	// A refusal is recorded, not failed.
	write(t, filepath.Join(e.cfg, "MODE"), "nospace", 0o644)
	dev2 := e.device(sshtest.UserConfig{})
	e.addUnit("full", e.unitFor(dev2))
	e.runWith(s, nil)
	dir, u = e.find("full")
	if dir != spool.Units || u.Get(unit.FieldPreflight) != "failed" || !strings.Contains(u.Get(unit.FieldPreflightMsg), "not enough space") {
		t.Fatalf("in %s PREFLIGHT=%q: %s", dir, u.Get(unit.FieldPreflight), u.Get(unit.FieldPreflightMsg))
	}
}

func TestEnvironmentThatWouldNotFlashIsRefusedOutsideARehearsal(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	write(t, filepath.Join(e.cfg, "balena-migrate.conf"), "IMAGE_NAME=resin-genericx86-64-ext.img.gz\nNO_FLASH=TRUE\n", 0o640)
	err := CheckEnvironment(context.Background(), e.settings(nil))
	if err == nil || !strings.Contains(err.Error(), "--rehearsal") {
		t.Fatalf("start-up check: %v", err)
	}
	if err := CheckEnvironment(context.Background(), e.settings(map[string]string{config.Rehearsal: "true"})); err != nil {
		t.Fatalf("a rehearsal refused: %v", err)
	}
	write(t, filepath.Join(e.cfg, "balena-migrate.conf"), "IMAGE_NAME=resin-genericx86-64-ext.img.gz\nNO_FLASH=FALSE\n", 0o640)
	if err := CheckEnvironment(context.Background(), e.settings(map[string]string{config.Rehearsal: "true"})); err == nil {
		t.Fatal("a rehearsal with an environment that flashes was accepted")
	}
	// A unit whose own environment would not flash fails before registering.
	noFlash := filepath.Join(t.TempDir(), "env")
	write(t, filepath.Join(noFlash, "balena-migrate"), standIn, 0o755)
	write(t, filepath.Join(noFlash, "balena-migrate.conf"), "NO_FLASH=yes\n", 0o640)
	dev := e.device(sshtest.UserConfig{})
	fields := e.unitFor(dev)
	fields[config.CfgDir] = noFlash
	e.addUnit("ghost", fields)
	e.runWith(e.settings(nil), nil)
	if dir, u := e.find("ghost"); dir != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassConfigError) || len(e.fake.Devices()) != 0 {
		t.Fatalf("in %s class %q, %d devices: %s", dir, u.Get(unit.FieldFailClass), len(e.fake.Devices()), u.Get(unit.FieldFailMsg))
	}
}

func TestDeviceFetchesTheImageItself(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	image := make([]byte, 2<<20)
	rand.Read(image)
	sum := sha256.Sum256(image)
	e.fake.AddImage("resin-genericx86-64-ext.img.gz", image)
	// The environment names the image and its checksum, but does not hold it.
	os.Remove(filepath.Join(e.cfg, "resin-genericx86-64-ext.img.gz"))
	write(t, filepath.Join(e.cfg, "resin-genericx86-64-ext.img.gz.sha256"), hex.EncodeToString(sum[:])+"  resin-genericx86-64-ext.img.gz\n", 0o644)
	dev := e.device(sshtest.UserConfig{})
	fields := e.unitFor(dev)
	fields[config.ImageURL] = e.fake.URL() + "/_fake/images/"
	e.addUnit("pull", fields)
	e.runWith(e.settings(nil), nil)
	if dir, u := e.find("pull"); dir != spool.Process {
		t.Fatalf("in %s: %s", dir, u.Get(unit.FieldFailMsg))
	}
	got, err := os.ReadFile(dev.Path(devproto.Dir + "/resin-genericx86-64-ext.img.gz"))
	if err != nil || !bytes.Equal(got, image) {
		t.Fatalf("the image on the device differs (%v)", err)
	}
	if n := e.fake.ImageBytes(); n != int64(len(image)) {
		t.Errorf("the mirror sent %d bytes, want %d", n, len(image))
	}

	// A mirror serving another file: nothing kept, the unit retried later.
	other := e.device(sshtest.UserConfig{})
	e.fake.AddImage("resin-genericx86-64-ext.img.gz", []byte("something else"))
	fields = e.unitFor(other)
	fields[config.ImageURL] = e.fake.URL() + "/_fake/images"
	e.addUnit("tampered", fields)
	e.runWith(e.settings(nil), nil)
	dir, u := e.find("tampered")
	if dir != spool.Units || !strings.Contains(u.Get(unit.FieldTransferFail), "checksum") || u.Has(unit.FieldDeviceID) {
		t.Fatalf("in %s, %q, DEVICE_ID %q", dir, u.Get(unit.FieldTransferFail), u.Get(unit.FieldDeviceID))
	}
	if _, err := os.Stat(other.Path(devproto.Dir + "/resin-genericx86-64-ext.img.gz")); !os.IsNotExist(err) {
		t.Error("a file with the wrong checksum was kept")
	}
}

// TestPerTypeEnvironmentsCheckedAtStartUp: a rehearsal with an environment
// split by device type is accepted when every sub-directory sets NO_FLASH,
// and a real run is refused when any one does.
func TestPerTypeEnvironmentsCheckedAtStartUp(t *testing.T) {
	e := newEnv(t, sshtest.Config{})
	e.cfg = typedEnv(t, map[string]string{"raspberrypi4-64": "raspberrypi4-64", "x86_64": "genericx86-64-ext"}, "NO_FLASH=TRUE\n")
	if err := CheckEnvironment(context.Background(), e.settings(map[string]string{config.Rehearsal: "true"})); err != nil {
		t.Fatalf("rehearsal with per-type environments: %v", err)
	}
	if err := CheckEnvironment(context.Background(), e.settings(nil)); err == nil || !strings.Contains(err.Error(), "--rehearsal") {
		t.Fatalf("a real run with NO_FLASH sub-directories: %v", err)
	}
	write(t, filepath.Join(e.cfg, "x86_64", "balena-migrate.conf"), "IMAGE_NAME=balena-genericx86-64-ext-2.113.0.img.gz\nNO_FLASH=FALSE\n", 0o640)
	if err := CheckEnvironment(context.Background(), e.settings(map[string]string{config.Rehearsal: "true"})); err == nil {
		t.Fatal("a rehearsal accepted a sub-directory that would flash")
	}
}
