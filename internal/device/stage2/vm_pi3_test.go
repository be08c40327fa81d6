package stage2_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/balenaimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// A Raspberry Pi 3 on its SD card (qemu's raspi3b, Debian 13's arm64
// kernel and its Pi 3 device tree): stage 2, the arm64 build, runs from an
// initramfs with the old root on mmcblk0p2, verifies a raspberrypi3-shaped
// image, flashes it onto mmcblk0, finds resin-boot and resin-data as
// mmcblk0p1 and mmcblk0p6, puts config.json, the network files and the
// backup there and reboots. The card then boots as the firmware boots it
// (config.txt on resin-boot): the stand-in finds config.json and the
// backup and reports to an API on the host as the device.
func TestVMPi3FlashesSDCard(t *testing.T) {
	if testing.Short() {
		t.Skip("two boots of an emulated Raspberry Pi 3 take minutes")
	}
	t.Parallel()
	testenv.NeedRoot(t, "the cached ARM kernel is root's")
	testenv.NeedProgram(t, "qemu-system-aarch64")
	testenv.NeedProgram(t, "mtype")
	repo, err := devvm.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	k, err := vmtest.FindARMKernel(repo, "rpi-arm64-trixie")
	testenv.Need(t, err == nil, "the arm64 Raspberry Pi kernel: "+errText(err))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// The device's API: it accepts the state report of the device's key.
	const uuid, key = "5f0c2a9d8e7b4c1a", "device-key-of-the-pi"
	api := &balenaimg.DeviceAPI{Key: key}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api}
	go srv.Serve(l)
	defer srv.Close()
	config, _ := json.Marshal(map[string]any{"uuid": uuid, "deviceApiKey": key, "deviceType": "raspberrypi3",
		"applicationId": 7, "apiEndpoint": "http://" + l.Addr().String()})

	start := time.Now()
	standin := filepath.Join(dir, "balenaos-standin")
	if err := balenaimg.BuildStandinFor(ctx, repo, standin, "arm64"); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "raspberrypi3.img")
	image, err := balenaimg.BuildRaspberryPi3(ctx, balenaimg.Options{Path: raw, Kernel: k, Standin: standin, Busybox: k.Busybox})
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(dir, "raspberrypi3.img.gz")
	sha, err := testimg.Gzip(raw, gz)
	if err != nil {
		t.Fatal(err)
	}
	gzData, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	// The backup stage 1 made: a gzip tarball with the old system's
	// files, which the stand-in lists as balenaOS would find it.
	backup, err := balenaimg.Backup(map[string][]byte{"etc/hostname": []byte("pi3\n"), "etc/default/keyboard": []byte("XKBLAYOUT=us\n")})
	if err != nil {
		t.Fatal(err)
	}
	wifi := []byte("[connection]\nid=home\ntype=wifi\n")

	// The old card, as Debian lays a Pi's out: the firmware partition
	// (FAT) and the root (ext4) holding the migration directory. qemu
	// wants a card size that is a power of two.
	files := map[string][]byte{home + "/raspberrypi3.img.gz": gzData, home + "/config.json": config,
		home + "/backup.tgz": backup, home + "/resin-wifi-01": wifi}
	card := filepath.Join(dir, "sd.img")
	old, err := testimg.Build(card, 512*testimg.MiB, []testimg.Part{
		{Size: 64 * testimg.MiB, Type: "c", FS: "vfat", Label: "RASPIFIRM", Files: map[string][]byte{"config.txt": []byte("arm_64bit=1\n")}},
		{Size: 440 * testimg.MiB, Type: "83", FS: "ext4", Label: "RASPIROOT", Files: files},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s2config.Default()
	cfg.BootDev, cfg.HomeDir, cfg.ImageFile, cfg.ImageSHA256 = "/dev/mmcblk0", home, "raspberrypi3.img.gz", sha
	cfg.BackupFile, cfg.BalenaConfig, cfg.NetworkConfigs, cfg.NoFlash = "backup.tgz", "config.json", []string{"resin-wifi-01"}, false
	// qemu 7.2's model of the Pi's PM watchdog resets the board the moment
	// it is armed (no countdown): the driver is loaded, as stage 1 loads
	// it on a Pi (it also restarts and powers off the board), not armed.
	cfg.Watchdog = 0
	f, err := os.Open(card)
	if err != nil {
		t.Fatal(err)
	}
	table, err := blkdev.TableID(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DiskSize, cfg.DiskTableID, cfg.RootPartStart = 512*testimg.MiB, table, old.Parts[1].Start
	conf, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "balena-migrate")
	if err := vmtest.BuildStaticFor(ctx, repo, "./cmd/balena-migrate", bin, "arm64"); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := (vmtest.Stage2Initramfs{Kernel: k, Binary: bin, Busybox: k.Busybox, Config: conf, RootDev: "/dev/mmcblk0p2", Reboot: true,
		BaseModules: []string{"bcm2835", "vfat", "nls_cp437", "nls_iso8859_1", "nls_ascii", "crc32c_generic", "ext4", "bcm2835_wdt"}}).Write(initrd); err != nil {
		t.Fatal(err)
	}
	t.Logf("images and initramfs built in %v", time.Since(start).Round(time.Second))

	res, err := vmtest.Boot(ctx, vmtest.VM{Pi3: true, Kernel: k, DTB: filepath.Join(k.DTBs, "bcm2837-rpi-3-b.dtb"), Initrd: initrd,
		Disks: []string{card}, Timeout: 25 * time.Minute})
	t.Logf("stage-2 boot took %v", res.Duration.Round(time.Second))
	if err != nil || !res.Rebooted {
		t.Fatalf("stage 2 did not reboot after flashing (%v, exit %d):\n%s", err, res.ExitCode, tailLines(res.Console, 60))
	}
	for _, want := range []string{"image verified", "point of no return", "/dev/mmcblk0", "found resin-boot (vfat) on /dev/mmcblk0p1",
		"found resin-data (ext4) on /dev/mmcblk0p6", "balenaOS installed"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("the stage-2 console lacks %q", want)
		}
	}
	got, err := testimg.MReadFile(card, image.Parts[0].Start, "config.json")
	if err != nil || string(got) != string(config) {
		t.Errorf("resin-boot/config.json: %q, %v", got, err)
	}
	if got, err := testimg.MReadFile(card, image.Parts[0].Start, "system-connections/resin-wifi-01"); err != nil || string(got) != string(wifi) {
		t.Errorf("resin-boot/system-connections/resin-wifi-01: %q, %v", got, err)
	}

	// The card boots as the Pi's firmware boots it.
	m, err := devvm.Start(devvm.Config{Name: "pi3", Board: devvm.BoardPi3, Disks: []string{card}, Console: filepath.Join(dir, "console.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if err := m.WaitExit(ctx); err != nil {
		t.Fatalf("%v:\n%s", err, tailLines(m.Console(), 60))
	}
	c := m.Console()
	for _, want := range []string{"firmware boot 1: config.txt: kernel kernel8.img, device tree bcm2710-rpi-3-b.dtb, initramfs \"initramfs.gz\"",
		balenaimg.MarkBoot, "STANDIN mounted resin-boot from /dev/mmcblk0p1, resin-data from /dev/mmcblk0p6",
		"STANDIN config.json: uuid=" + uuid + " ", "STANDIN backup: backup.tgz 2 entries: etc/default/keyboard etc/hostname", balenaimg.MarkOnline + uuid} {
		if !strings.Contains(c, want) {
			t.Fatalf("the flashed card's boot lacks %q:\n%s", want, tailLines(c, 60))
		}
	}
	if !api.Reported(uuid) {
		t.Error("the API got no state report keyed by the device's UUID with its key")
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Second))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
