// Package e2e migrates virtual machines end to end with the real programs:
// Debian 12 device VMs (package devvm) reached over SSH, the fake balena
// API (or, with Options.RealAPI, the real server, open-balena-api, package
// openbalena), migdb-add-unit, migdb-migrate and migdb-check-done as
// worker processes, the static balena-migrate running stage 1 inside each
// VM and stage 2 from the initramfs stage 1 built there, and balenaOS
// stand-in images (package balenaimg) that, once flashed and booted, do what
// balenaOS's supervisor does first: GET /device/v3/<uuid>/state and PATCH
// /device/v3/state with the device's API key, to the apiEndpoint of its
// config.json — against open-balena-api through a TLS front whose CA
// config.json carries as balenaRootCA, as for a self-signed openBalena. A
// unit in done/ therefore means the flashed system booted with the right
// config.json on the right partition and balena saw its heartbeat.
//
// Each device kind has the state its unit must end in; Run watches every
// unit, its log and its VM's serial console, records when each phase ended,
// and reports what ended where. scripts/e2e and the package's test use it.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/balenaimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
	"github.com/fleetmig/balena-migrate/internal/testenv/openbalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// Options shape one run.
type Options struct {
	Repo    string        // repository root
	Work    string        // run directory; a new one under the temp dir when empty
	Keep    bool          // leave the run directory (VM disks, consoles, db) behind
	Kinds   []Kind        // one device per entry
	Timeout time.Duration // for the whole run; 40 minutes when 0
	Out     io.Writer     // progress lines
	// RealAPI runs open-balena-api instead of the fake balena API.
	RealAPI bool
}

// Result is what a run ended with.
type Result struct {
	Work     string
	Devices  []*Device
	Wall     time.Duration
	Expected int // devices
	Done     int // devices that ended where they should
	// API is what the balena API served: requests by route, the workers'
	// and the devices'.
	API APIUse
}

// fakeToken is the fake API's user token: a throw-away value.
const fakeToken = "e2e-token-not-secret"

// The balena fleet every device is registered in (on the fake: this slug;
// on open-balena-api: the admin's organisation's fleet of this name), the
// OS version of the images, and the images per device type (a
// sub-directory of the environment each).
const (
	fleetName = "fleet"
	fleetType = "genericx86-64-ext"
	osVersion = "2.113.0"
)

// migdb-check-done's limits: the time a flashed device has to come online
// (with room for a busy host: under TCG on a loaded 2-core host the UEFI
// machine's grub took 7 minutes to load the stage-2 boot), and when a
// device not online yet is first looked at over SSH for stage 2's refusal.
// Looks then follow at 67 s, 112 s, 202 s, 382 s: a refused BIOS device is
// back on its old system about 130–200 s after migration here.
const (
	maxAge    = 900 * time.Second
	lookAfter = 45 * time.Second
)

func secsArg(d time.Duration) string { return fmt.Sprint(int(d.Seconds())) }

func imageName(slug string) string { return "resin-" + slug + "-e2e.img.gz" }

// group is one database with its environment and workers: the real run,
// or the rehearsal (an environment that does not flash, --rehearsal).
type group struct {
	name      string
	db        string // --base
	env       string
	rehearsal bool
}

type run struct {
	o       Options
	bin     string
	url     string // the API as the workers reach it
	devURL  string // the API as the devices reach it (on the host)
	token   string
	fleet   string
	api     *openbalena.Server
	bios    devvm.Image
	uefi    devvm.Image
	groups  map[bool]*group // by rehearsal
	procs   []*exec.Cmd
	devices []*Device
	start   time.Time
}

// Run migrates one device VM per o.Kinds and reports where each ended.
// The error is for a run that could not be carried out at all; a device
// that ended in the wrong place is in the Result.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Timeout == 0 {
		o.Timeout = 40 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	r := &run{o: o, start: time.Now(), groups: map[bool]*group{}}
	if r.bios, err = devvm.FindBIOS(o.Repo); err != nil {
		return nil, err
	}
	if r.uefi, err = devvm.FindUEFI(o.Repo); err != nil {
		return nil, err
	}
	if o.Work == "" {
		if o.Work, err = os.MkdirTemp("", "balena-migrate-e2e-"); err != nil {
			return nil, err
		}
		r.o.Work = o.Work
	} else if err := os.MkdirAll(o.Work, 0o700); err != nil {
		return nil, err
	}
	res = &Result{Work: o.Work}
	defer r.close()
	r.say("run directory %s", o.Work)
	// The workers log in with copies: the cache may be rebuilt meanwhile.
	if r.bios, err = ownLogin(r.bios, o.Work); err != nil {
		return res, err
	}
	r.uefi.Key, r.uefi.Password = r.bios.Key, r.bios.Password
	if err := r.prepare(ctx); err != nil {
		return res, err
	}
	if err := r.boot(ctx); err != nil {
		return res, err
	}
	if err := r.submit(ctx); err != nil {
		return res, err
	}
	if err := r.startWorkers(); err != nil {
		return res, err
	}
	r.watch(ctx)
	if parent.Err() != nil {
		return res, fmt.Errorf("interrupted: %w", parent.Err())
	}
	registered := r.registered(ctx)
	res.Devices, res.Expected, res.Wall = r.devices, len(r.devices), time.Since(r.start)
	if res.API, err = r.apiUse(ctx); err != nil {
		r.say("cannot read what the balena API served: %v", err)
		err = nil
	}
	for _, d := range r.devices {
		d.check(ctx, registered)
		if d.Err == nil {
			res.Done++
		}
	}
	return res, nil
}

func (r *run) say(format string, a ...any) {
	fmt.Fprintf(r.o.Out, "e2e %6.1fs: %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, a...))
}

// prepare builds the programs, starts the fake API and makes the migration
// environments with the stand-in images.
func (r *run) prepare(ctx context.Context) error {
	r.bin = filepath.Join(r.o.Work, "bin")
	if err := os.MkdirAll(r.bin, 0o700); err != nil {
		return err
	}
	t := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", r.bin+"/", "./cmd/migdb-add-unit", "./cmd/migdb-migrate",
		"./cmd/migdb-check-done", "./cmd/dev/fake-balena-api")
	build.Dir = r.o.Repo
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %w: %s", err, out)
	}
	migrator := filepath.Join(r.bin, "balena-migrate")
	if err := vmtest.BuildBinary(ctx, r.o.Repo, migrator); err != nil {
		return err
	}
	standin := filepath.Join(r.bin, "balenaos-standin")
	if err := balenaimg.BuildStandin(ctx, r.o.Repo, standin); err != nil {
		return err
	}
	r.say("built the programs in %v", time.Since(t).Round(time.Second))
	start := r.startFake
	if r.o.RealAPI {
		start = r.startOpenBalena
	}
	if err := start(ctx); err != nil {
		return err
	}
	kernel, err := vmtest.FindKernel()
	if err != nil {
		return err
	}
	images := map[string]string{} // slug → gzipped image
	for _, slug := range []string{"genericx86-64-ext", "generic-amd64"} {
		build, raw := balenaimg.BuildMBR, filepath.Join(r.o.Work, slug+".img")
		if slug == "generic-amd64" {
			build = balenaimg.BuildGPT
		}
		if _, err := build(ctx, balenaimg.Options{Path: raw, Kernel: kernel, Standin: standin,
			OSVersion: "balenaOS " + osVersion}); err != nil {
			return fmt.Errorf("%s stand-in image: %w", slug, err)
		}
		images[slug] = raw + ".gz"
		sum, err := testimg.Gzip(raw, images[slug])
		if err != nil {
			return err
		}
		os.Remove(raw)
		r.say("balenaOS stand-in for %s: %s (sha256 %s…)", slug, imageName(slug), sum[:12])
	}
	for _, k := range r.o.Kinds {
		rehearsal := k.spec().rehearsal
		if r.groups[rehearsal] != nil {
			continue
		}
		g := &group{name: "fleet", rehearsal: rehearsal}
		if rehearsal {
			g.name = "rehearsal"
		}
		g.db, g.env = filepath.Join(r.o.Work, g.name), filepath.Join(r.o.Work, g.name+"-migratecfg")
		for slug, img := range images {
			dir := filepath.Join(g.env, slug)
			if rehearsal {
				// One environment for all: migdb-migrate --rehearsal reads
				// NO_FLASH from the top directory only.
				if slug != "genericx86-64-ext" {
					continue
				}
				dir = g.env
			}
			if err := r.environment(dir, slug, migrator, img, !rehearsal); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(g.db, 0o700); err != nil {
			return err
		}
		r.groups[rehearsal] = g
	}
	return nil
}

// environment fills one device type's migration environment: the binary,
// the image and balena-migrate.conf — a real flash or a rehearsal, a small
// backup, and the API checked from the device at the address the VM
// reaches it at.
func (r *run) environment(dir, slug, migrator, img string, flash bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{migrator: "balena-migrate", img: imageName(slug)} {
		if err := os.Link(src, filepath.Join(dir, dst)); err != nil {
			return err
		}
	}
	noFlash := "TRUE"
	if flash {
		noFlash = "FALSE"
	}
	port := r.devURL[strings.LastIndex(r.devURL, ":")+1:]
	conf := "IMAGE_NAME=" + imageName(slug) + "\nNO_FLASH=" + noFlash + "\nBACKUP_DIRECTORIES=/etc/default /etc/ssh/sshd_config.d\n" +
		"BALENA_API_HOST=" + devvm.HostAddr + "\nBALENA_API_PORT=" + port + "\nBALENA_VPN_HOST=\n"
	return os.WriteFile(filepath.Join(dir, "balena-migrate.conf"), []byte(conf), 0o644)
}

func (r *run) startFake(ctx context.Context) error {
	urlFile := filepath.Join(r.o.Work, "fake-api.url")
	logf, err := os.Create(filepath.Join(r.o.Work, "fake-api.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	r.fleet, r.token = "e2e/"+fleetName, fakeToken
	c := exec.Command(filepath.Join(r.bin, "fake-balena-api"), "--listen", "127.0.0.1:0",
		"--app", r.fleet+":"+fleetType, "--log-requests", "--url-file", urlFile)
	c.Env = append(os.Environ(), "MIG_BALENA_TOKEN="+r.token)
	c.Stdout, c.Stderr = logf, logf
	if err := r.startProc(c); err != nil {
		return fmt.Errorf("fake balena API: %w", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if data, err := os.ReadFile(urlFile); err == nil && len(data) > 0 {
			r.url = strings.TrimSpace(string(data))
			r.devURL = r.url
			r.say("fake balena API at %s", r.url)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("fake balena API did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownLogin copies the image's login files into dir.
func ownLogin(img devvm.Image, dir string) (devvm.Image, error) {
	for _, p := range []*string{&img.Key, &img.Password} {
		data, err := os.ReadFile(*p)
		if err != nil {
			return img, err
		}
		dst := filepath.Join(dir, filepath.Base(*p))
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return img, err
		}
		*p = dst
	}
	return img, nil
}

// startProc starts a helper process that dies with this one.
func (r *run) startProc(c *exec.Cmd) error {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.Start(); err != nil {
		return err
	}
	r.procs = append(r.procs, c)
	return nil
}

// boot starts every device VM and waits for its SSH login.
func (r *run) boot(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(r.o.Kinds))
	for i, k := range r.o.Kinds {
		name := fmt.Sprintf("%s-%d", k, i+1)
		d := &Device{Name: name, Kind: k, Dir: filepath.Join(r.o.Work, "vm-"+name), group: r.groups[k.spec().rehearsal]}
		r.devices = append(r.devices, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.bootDevice(ctx, d)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) bootDevice(ctx context.Context, d *Device) error {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return err
	}
	spec := d.Kind.spec()
	img := r.bios
	cfg := devvm.Config{Name: d.Name, Console: filepath.Join(d.Dir, "console.log")}
	if spec.uefi {
		img = r.uefi
		cfg.UEFIVars = filepath.Join(d.Dir, "ovmf-vars.fd")
	}
	disk := filepath.Join(d.Dir, "disk.img")
	if err := devvm.CopyDisk(ctx, img.Disk, disk); err != nil {
		return err
	}
	cfg.Disks = []string{disk}
	t := time.Now()
	m, err := devvm.Start(cfg)
	if err != nil {
		return err
	}
	d.VM = m
	d.root = img.RootLogin()
	d.login = d.root
	if !spec.root {
		if d.login, err = img.UserLogin(); err != nil {
			return err
		}
	}
	if err := m.WaitSSH(ctx, d.login); err != nil {
		return err
	}
	d.Booted = time.Since(t)
	r.say("%s: Debian 12 up, SSH as %s on %s after %v", d.Name, d.login.User, m.Addr(), d.Booted.Round(time.Second))
	if spec.corrupt {
		return corrupt(ctx, d, d.root)
	}
	return nil
}

// submit adds one unit per device with migdb-add-unit.
func (r *run) submit(ctx context.Context) error {
	for _, d := range r.devices {
		d.UnitID = "e2e-" + d.Name
		args := []string{"--base", d.group.db, "--color", "OFF", "--host", "127.0.0.1", "-p", fmt.Sprint(d.VM.SSHPort), "-u", d.login.User}
		if d.login.Key != "" {
			args = append(args, "-i", d.login.Key)
		}
		if d.login.Password != "" {
			args = append(args, "--passwd", d.login.Password)
		}
		if out, err := exec.CommandContext(ctx, filepath.Join(r.bin, "migdb-add-unit"), append(args, d.UnitID)...).CombinedOutput(); err != nil {
			return fmt.Errorf("migdb-add-unit %s: %w: %s", d.UnitID, err, out)
		}
		d.mark(markSubmitted)
	}
	r.say("submitted %d units", len(r.devices))
	return nil
}

// startWorkers starts one migdb-migrate and one migdb-check-done per group.
func (r *run) startWorkers() error {
	for _, g := range r.groups {
		logs := filepath.Join(r.o.Work, "logs-"+g.name)
		if err := os.MkdirAll(logs, 0o700); err != nil {
			return err
		}
		common := []string{"--base", g.db, "--balena-api", r.url, "--log-to", logs, "--color", "OFF",
			"--jobs", fmt.Sprint(len(r.devices))}
		mig := append(append([]string{}, common...), "--app", r.fleet, "--balena-ver", osVersion, "--cfg-dir", g.env,
			"--known-hosts", filepath.Join(r.o.Work, "known_hosts-"+g.name), "--dur", "15",
			// mkinitramfs alone takes minutes on a VM under TCG on a busy host
			"--exec-timeout", "1800")
		if g.rehearsal {
			mig = append(mig, "--rehearsal")
		}
		// Stage 2's refusal is looked for over SSH soon after migration
		// (then at doubling waits), not only at --max-age.
		chk := append(append([]string{}, common...), "--check-interval", "5", "--max-age", secsArg(maxAge), "--stage2-look-after", secsArg(lookAfter),
			"--known-hosts", filepath.Join(r.o.Work, "known_hosts-"+g.name))
		for _, w := range []struct {
			name string
			args []string
		}{{"migdb-migrate", mig}, {"migdb-check-done", chk}} {
			c := exec.Command(filepath.Join(r.bin, w.name), w.args...)
			c.Env = append(os.Environ(), "MIG_BALENA_TOKEN="+r.token)
			out, err := os.Create(filepath.Join(logs, w.name+".out"))
			if err != nil {
				return err
			}
			c.Stdout, c.Stderr = out, out
			err = r.startProc(c)
			out.Close()
			if err != nil {
				return err
			}
		}
		r.say("%s: migdb-migrate and migdb-check-done running (logs in %s)", g.name, logs)
	}
	return nil
}

// close stops the workers, the fake API and the VMs, and removes the run
// directory unless asked to keep it.
func (r *run) close() {
	if len(r.procs) > 1 {
		for _, g := range r.groups {
			stop := exec.Command(filepath.Join(r.bin, "migdb-migrate"), "--base", g.db, "--stop", "--color", "OFF")
			done := make(chan error, 1)
			go func() { done <- stop.Run() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				stop.Process.Kill()
			}
		}
	}
	for i := len(r.procs) - 1; i >= 0; i-- {
		p := r.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { p.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
			<-waited
		}
	}
	for _, d := range r.devices {
		if d.VM != nil {
			d.VM.Stop()
		}
	}
	if r.api != nil {
		r.api.Stop()
	}
	if r.o.Keep {
		r.say("kept %s", r.o.Work)
		return
	}
	os.RemoveAll(r.o.Work)
}

// startOpenBalena starts open-balena-api with a TLS front the VMs reach
// at the host's address (config.json: apiEndpoint https://127.0.0.1:<front>,
// which the stand-in reaches at devvm.HostAddr, and balenaRootCA), and
// makes the fleet. The workers talk to the API directly.
func (r *run) startOpenBalena(ctx context.Context) error {
	t := time.Now()
	s, err := openbalena.Start(ctx, openbalena.Options{TLSNames: []string{devvm.HostAddr}})
	if err != nil {
		return err
	}
	r.api = s
	if _, r.fleet, err = s.NewFleet(ctx, fleetName, fleetType); err != nil {
		return err
	}
	r.url, r.devURL, r.token = s.URL, s.TLSURL, s.AdminKey
	r.say("open-balena-api at %s, TLS front %s, fleet %s (started in %v)", r.url, r.devURL, r.fleet, time.Since(t).Round(time.Second))
	return nil
}
