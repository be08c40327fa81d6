package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/testenv/balenaimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
)

// Kind is a kind of device and the fate its migration must have.
type Kind string

// The device kinds.
const (
	// BIOSFlash is Debian 12 booting with the PC BIOS from an MBR disk,
	// reached as root with a key: flashed with the genericx86-64-ext
	// stand-in, online, done/.
	BIOSFlash Kind = "bios-flash"
	// UEFIFlash is Debian 12 booting with UEFI (OVMF) from a GPT disk,
	// reached as a sudo user with a password: flashed with the GPT
	// generic-amd64 stand-in, online, done/.
	UEFIFlash Kind = "uefi-flash"
	// BIOSCorrupt is the BIOS machine whose image is damaged on the device
	// after stage 1 (at the reboot stage 1 asked for): stage 2 must refuse,
	// the old system boot again, and the unit fail with class stage2.
	BIOSCorrupt Kind = "bios-corrupt"
	// BIOSRehearsal is the BIOS machine in a rehearsal (--rehearsal, an
	// environment with NO_FLASH=TRUE): nothing registered, stage 2 stops
	// before flashing, the old system boots again, and the unit goes back
	// to units/ with REHEARSAL=ok.
	BIOSRehearsal Kind = "bios-rehearsal"
)

// Kinds lists every kind, in the order scripts/e2e runs them.
var Kinds = []Kind{BIOSFlash, UEFIFlash, BIOSCorrupt, BIOSRehearsal}

// ParseKind reads a kind name.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown device kind %q (known: %v)", s, Kinds)
}

// spec is what a kind is made of and must end as.
type spec struct {
	uefi      bool   // UEFI/GPT machine, else BIOS/MBR
	root      bool   // logs in as root with a key, else as the sudo user with a password
	corrupt   bool   // its image is damaged after stage 1
	rehearsal bool   // migrated by the rehearsal group
	dir       string // where its unit must end
	class     string // with this FAIL_CLASS
	flashed   bool   // the stand-in must boot and report
}

func (k Kind) spec() spec {
	switch k {
	case UEFIFlash:
		return spec{uefi: true, dir: "done", flashed: true}
	case BIOSCorrupt:
		return spec{root: true, corrupt: true, dir: "fail", class: "stage2"}
	case BIOSRehearsal:
		return spec{root: true, rehearsal: true, dir: "units"}
	}
	return spec{root: true, dir: "done", flashed: true}
}

// corruptScript damages the migration image once stage 1 has finished
// (the one-shot grub entry is set), when the system goes down for the
// reboot into stage 2; then it removes itself.
const corruptScript = `#!/bin/sh
grep -q '^next_entry=balena' /boot/grub/grubenv 2>/dev/null || exit 0
for f in /root/migrate/*/*.img.gz /root/migrate/*.img.gz; do
	[ -f "$f" ] || continue
	size=$(stat -c %s "$f")
	printf 'E2E-CORRUPTED-THIS-IMAGE' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
	echo "e2e: corrupted $f after stage 1" >/dev/console
done
# --no-reload: no daemon reload asked of systemd while it shuts down
systemctl --no-reload disable e2e-corrupt.service
sync
`

const corruptUnit = `[Unit]
Description=e2e: damage the migration image at the reboot into stage 2
After=local-fs.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/usr/local/sbin/e2e-corrupt-image
[Install]
WantedBy=multi-user.target
`

// corrupt installs the service that damages the image after stage 1.
func corrupt(ctx context.Context, d *Device, root devvm.Login) error {
	cmd := "cat >/usr/local/sbin/e2e-corrupt-image <<'EOF'\n" + corruptScript + "EOF\n" +
		"chmod 755 /usr/local/sbin/e2e-corrupt-image\n" +
		"cat >/etc/systemd/system/e2e-corrupt.service <<'EOF'\n" + corruptUnit + "EOF\n" +
		"systemctl daemon-reload && systemctl enable --now e2e-corrupt.service"
	_, err := d.VM.Run(ctx, root, cmd)
	return err
}

// The moments a device's migration passes, in order.
const (
	markSubmitted = "submitted"
	markConnect   = "connect"   // the worker connects (unit log)
	markPreflight = "preflight" // balena-migrate --pretend runs on the device (unit log)
	markStage1    = "stage1"    // balena-migrate runs for real on the device (unit log)
	markMigrated  = "migrated"  // the unit is in process/
	markStage2    = "stage2"    // stage 2 starts (console)
	markBooted    = "booted"    // the next system boots: the stand-in, or stage 2 hands back to the old one (console)
	markOnline    = "online"    // the stand-in's report was accepted (console)
	markEnd       = "end"       // the unit reached done/ or fail/, or units/ after a rehearsal
)

// Device is one VM being migrated.
type Device struct {
	Name   string
	Kind   Kind
	Dir    string // its files: disk, console.log
	UnitID string
	VM     *devvm.Machine
	Booted time.Duration // power on → SSH login

	group *group
	login devvm.Login
	root  devvm.Login
	mu    sync.Mutex
	marks map[string]time.Time

	Final     string        // "done", "fail", "units": where the unit ended; "" when it did not
	Class     string        // FAIL_CLASS when it failed
	Rehearsal string        // REHEARSAL
	Msg       string        // FAIL_MSG
	Looks     string        // STAGE2_LOOKS: migdb-check-done's SSH looks at the device
	FailAfter time.Duration // from migration (STATUS_TS) to the failure (FAIL_TS)
	UUID      string        // DEVICE_ID
	OnlineBy  string        // ONLINE_BY: how balena showed it online (heartbeat, vpn)
	Err       error         // why it did not end as its kind must
}

func (d *Device) mark(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.marks == nil {
		d.marks = map[string]time.Time{}
	}
	if _, ok := d.marks[name]; !ok {
		d.marks[name] = time.Now()
	}
}

func (d *Device) at(name string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.marks[name]
	return t, ok
}

// watch polls every unit, unit log and console until every unit has ended
// or ctx ends.
func (r *run) watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		left := 0
		for _, d := range r.devices {
			if d.Final != "" {
				continue
			}
			r.observe(d)
			if d.Final == "" {
				left++
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			r.say("time is up: %d devices have not ended", left)
			return
		case <-tick.C:
		}
	}
}

func (r *run) observe(d *Device) {
	db := filepath.Join(d.group.db, "db")
	ulog := readGlob(filepath.Join(db, "log", "log-"+d.UnitID+"-*"))
	if strings.Contains(ulog, "connecting to") {
		d.mark(markConnect)
	}
	if strings.Contains(ulog, "pre-flight: running") {
		d.mark(markPreflight)
	}
	if strings.Contains(ulog, "stage 1: running") {
		d.mark(markStage1)
	}
	for _, dir := range []string{"process", "done", "fail", "units"} {
		f := glob1(filepath.Join(db, dir, "*-"+d.UnitID+"-*"))
		if f == "" {
			continue
		}
		if dir == "process" || dir == "done" {
			d.mark(markMigrated)
		}
		// a unit is back in units/ for good once its rehearsal is recorded
		if dir != "process" && (dir != "units" || fieldOf(f, "REHEARSAL") != "") {
			d.finish(dir, f)
			r.say("%s: unit %s is in %s/ %s%s (SSH looks by migdb-check-done: %q)", d.Name, d.UnitID, dir, d.Class, d.Rehearsal, d.Looks)
		}
	}
	c := d.VM.Console()
	if i := strings.Index(c, "stage 2 starting"); i >= 0 {
		d.mark(markStage2)
		rest := c[i:]
		if strings.Contains(rest, "stand-in grub: booting") || strings.Contains(rest, "handing back to the old system") {
			d.mark(markBooted)
		}
	}
	if strings.Contains(c, balenaimg.MarkOnline) {
		d.mark(markOnline)
	}
}

func fieldOf(file, key string) string {
	f, err := envfile.Read(file)
	if err != nil {
		return ""
	}
	return f.Value(key)
}

func (d *Device) finish(dir, file string) {
	d.mark(markEnd)
	d.Final = dir
	f, err := envfile.Read(file)
	if err != nil {
		d.Msg = err.Error()
		return
	}
	d.Class, d.Msg, d.UUID = f.Value("FAIL_CLASS"), f.Value("FAIL_MSG"), f.Value("DEVICE_ID")
	d.Rehearsal = f.Value("REHEARSAL")
	d.OnlineBy = f.Value("ONLINE_BY")
	d.Looks = f.Value("STAGE2_LOOKS")
	migrated, err1 := strconv.ParseInt(f.Value("STATUS_TS"), 10, 64)
	failed, err2 := strconv.ParseInt(f.Value("FAIL_TS"), 10, 64)
	if err1 == nil && err2 == nil {
		d.FailAfter = time.Duration(failed-migrated) * time.Second
	}
	if d.Msg == "" {
		d.Msg = f.Value("REHEARSAL_MSG")
	}
}

// seen is what balena holds for a device at the end of the run.
type seen struct {
	Online    bool   // by heartbeat or VPN
	OSVersion string // as the device reported it
}

// registered lists the devices balena holds by UUID; nil when the list
// cannot be read.
func (r *run) registered(ctx context.Context) map[string]seen {
	ctx = context.WithoutCancel(ctx)
	m := map[string]seen{}
	if r.api != nil {
		var reply struct {
			D []struct {
				UUID      string `json:"uuid"`
				VPN       bool   `json:"is_online"`
				Heartbeat string `json:"api_heartbeat_state"`
				OSVersion string `json:"os_version"`
			} `json:"d"`
		}
		if r.api.Admin(ctx, "GET", "/v7/device?$select=uuid,is_online,api_heartbeat_state,os_version", nil, &reply) != nil {
			return nil
		}
		for _, d := range reply.D {
			m[d.UUID] = seen{Online: d.VPN || d.Heartbeat == "online", OSVersion: d.OSVersion}
		}
		return m
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/_fake/devices", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var rows []struct {
		UUID   string `json:"uuid"`
		Online bool   `json:"is_online"`
	}
	if json.NewDecoder(resp.Body).Decode(&rows) != nil {
		return nil
	}
	for _, row := range rows {
		m[row.UUID] = seen{Online: row.Online, OSVersion: "balenaOS " + osVersion}
	}
	return m
}

// check says whether the device ended as its kind must, and whether what
// its console shows and what balena holds agree.
func (d *Device) check(ctx context.Context, registered map[string]seen) {
	sp := d.Kind.spec()
	c := d.VM.Console()
	looks, _ := strconv.Atoi(d.Looks)
	var back error // the old system answers SSH again
	if !sp.flashed && d.Final != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		back = d.VM.WaitSSH(ctx, d.root)
		cancel()
	}
	switch {
	case d.Final == "":
		d.Err = fmt.Errorf("unit never ended (want %s/)", sp.dir)
	case d.Final != sp.dir || d.Class != sp.class:
		d.Err = fmt.Errorf("unit ended in %s/ class %q (%s), want %s/ class %q", d.Final, d.Class, d.Msg, sp.dir, sp.class)
	case sp.flashed && !strings.Contains(c, "STANDIN config.json: uuid="+d.UUID+" "):
		d.Err = fmt.Errorf("the booted stand-in did not read the unit's UUID %s from config.json", d.UUID)
	case sp.flashed && !strings.Contains(c, "STANDIN backup: backup.tgz"):
		d.Err = fmt.Errorf("the booted stand-in found no backup on resin-data")
	case !sp.flashed && strings.Contains(c, balenaimg.MarkBoot):
		d.Err = fmt.Errorf("a balenaOS stand-in booted on a device that must keep its old system")
	case !sp.flashed && back != nil:
		d.Err = fmt.Errorf("the old system did not come back: %w", back)
	case sp.corrupt && !strings.Contains(c, "e2e: corrupted"):
		d.Err = fmt.Errorf("the image was never corrupted: stage 2's refusal was not tested")
	case sp.corrupt && (d.FailAfter <= 0 || d.FailAfter >= maxAge):
		d.Err = fmt.Errorf("the refusal was seen %v after migration, not before --max-age %v: migdb-check-done did not look early", d.FailAfter, maxAge)
	case sp.corrupt && !(looks >= 1 && looks <= maxLooks(d.FailAfter+time.Second)): // epoch seconds: 1 s of slack
		d.Err = fmt.Errorf("STAGE2_LOOKS=%q in %v, want 1 to %d (the pacing)", d.Looks, d.FailAfter, maxLooks(d.FailAfter+time.Second))
	case sp.corrupt && !strings.Contains(d.Msg, "image check failed"):
		d.Err = fmt.Errorf("FAIL_MSG does not give stage 2's reason (image check failed): %s", d.Msg)
	case sp.corrupt && !strings.Contains(c, "stage 2 stopped before flashing"):
		d.Err = fmt.Errorf("the console does not show stage 2's refusal before flashing")
	case sp.rehearsal && d.Rehearsal != "ok":
		d.Err = fmt.Errorf("REHEARSAL=%q (%s), want ok", d.Rehearsal, d.Msg)
	case sp.rehearsal && !devproto.StoppedBeforeFlashing(c):
		d.Err = fmt.Errorf("stage 2 did not stop before flashing")
	case sp.rehearsal && (registered == nil || d.UUID != "" && holds(registered, d.UUID)):
		d.Err = fmt.Errorf("a rehearsal registered device %q in balena (or balena's device list is unreadable)", d.UUID)
	case sp.flashed && d.OnlineBy != "heartbeat": // the stand-in has no VPN client
		d.Err = fmt.Errorf("ONLINE_BY=%q in the unit, want heartbeat (the supervisor's state GET and PATCH)", d.OnlineBy)
	case sp.flashed && !registered[d.UUID].Online:
		d.Err = fmt.Errorf("balena does not show device %s online: %+v", d.UUID, registered[d.UUID])
	case sp.flashed && registered[d.UUID].OSVersion != "balenaOS "+osVersion:
		d.Err = fmt.Errorf("device %s reported OS %q to balena, want the image's balenaOS %s", d.UUID, registered[d.UUID].OSVersion, osVersion)
	}
}

// maxLooks is how many SSH looks migdb-check-done may make at a device in
// the first d after migration: at lookAfter, then after waits doubling
// from half of it.
func maxLooks(d time.Duration) int {
	n, at, gap := 0, lookAfter, lookAfter/2
	for ; at <= d; at, gap = at+gap, gap*2 {
		n++
	}
	return n
}

func glob1(pattern string) string {
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

func readGlob(pattern string) string {
	f := glob1(pattern)
	if f == "" {
		return ""
	}
	b, _ := os.ReadFile(f)
	return string(b)
}

func holds(m map[string]seen, uuid string) bool {
	_, ok := m[uuid]
	return ok
}
