package balenaimg

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

func backupTgz(t *testing.T, names ...string) []byte {
	files := map[string][]byte{}
	for _, n := range names {
		files[n] = []byte("x\n")
	}
	b, err := Backup(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The stand-in boots from its own MBR through grub in the MBR, finds
// config.json on resin-boot and the backup on resin-data, gets a DHCP
// lease on qemu's network and reports to the API on the host as the
// device, with the device's key and UUID.
func TestStandinMBR(t *testing.T) {
	testStandin(t, BuildMBR, false)
}

// The generic-amd64 stand-in: OVMF boots grub's EFI image from resin-boot,
// the EFI system partition of its GPT; the rest as with the MBR one.
func TestStandinGPT(t *testing.T) {
	testenv.NeedFile(t, devvm.OVMFCode, "the ovmf package (scripts/test-packages)")
	testenv.NeedFile(t, "/usr/lib/grub/x86_64-efi/linux.mod", "grub-efi-amd64-bin (scripts/test-packages)")
	testStandin(t, BuildGPT, true)
}

func testStandin(t *testing.T, build func(context.Context, Options) (Image, error), uefi bool) {
	if testing.Short() {
		t.Skip("boots a VM under TCG")
	}
	testenv.NeedProgram(t, "qemu-system-x86_64")
	testenv.NeedProgram(t, "grub-mkimage")
	testenv.NeedProgram(t, "mkfs.vfat")
	testenv.NeedFile(t, "/usr/lib/grub/i386-pc/boot.img", "grub-pc-bin")
	kernel, err := vmtest.FindKernel()
	testenv.Need(t, err == nil, "the cached VM kernel (scripts/test-setup.d/50-vm-kernel)")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	repo, err := devvm.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	standin := filepath.Join(dir, "balenaos-standin")
	if err := BuildStandin(ctx, repo, standin); err != nil {
		t.Fatal(err)
	}

	rec := &DeviceAPI{Key: "device-key-1234"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec}
	go srv.Serve(l)
	defer srv.Close()
	const uuid = "0123456789abcdef0123456789abcdef"
	cfg, _ := json.Marshal(map[string]any{"uuid": uuid, "deviceApiKey": rec.Key, "deviceType": "genericx86-64-ext",
		"applicationId": 7, "apiEndpoint": "http://" + l.Addr().String()})

	img := filepath.Join(dir, "balena.img")
	if _, err := build(ctx, Options{Path: img, Kernel: kernel, Standin: standin, OSVersion: "balenaOS 2.113.0",
		Boot: map[string][]byte{"config.json": cfg},
		Data: map[string][]byte{"backup.tgz": backupTgz(t, "etc/default/grub", "etc/hostname")}}); err != nil {
		t.Fatal(err)
	}
	vmcfg := devvm.Config{Name: "standin", Disks: []string{img}, Console: filepath.Join(dir, "console.log"), Memory: 512}
	if uefi {
		vmcfg.UEFIVars = filepath.Join(dir, "vars.fd")
	}
	m, err := devvm.Start(vmcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	start := time.Now()
	if _, err := m.WaitConsole(ctx, 0, MarkExit); err != nil {
		t.Fatalf("%v\n%s", err, m.Console())
	}
	t.Logf("power on → reported: %v", time.Since(start).Round(time.Second))
	if err := m.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
	console := m.Console()
	for _, want := range []string{
		"stand-in grub: booting resin-rootA",
		MarkBoot,
		"STANDIN config.json: uuid=" + uuid + " deviceType=genericx86-64-ext",
		"STANDIN backup: backup.tgz 2 entries: etc/default/grub etc/hostname",
		"STANDIN network: eth0 10.0.2.15",
		"STANDIN state GET and PATCH accepted (balenaOS 2.113.0)",
		MarkOnline + uuid,
		MarkExit + "0",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(console, rec.Key) {
		t.Error("the device key reached the console")
	}
	reqs := rec.Requests()
	// What the supervisor does first: its target state, then its state.
	if len(reqs) != 2 {
		t.Fatalf("API saw %d requests, want 2: %+v", len(reqs), reqs)
	}
	if g := reqs[0]; g.Method != http.MethodGet || g.Path != "/device/v3/"+uuid+"/state" || g.Auth != "Bearer "+rec.Key {
		t.Errorf("first request: %s %s auth %q", g.Method, g.Path, g.Auth)
	}
	r := reqs[1]
	if r.Method != http.MethodPatch || r.Path != "/device/v3/state" || r.Auth != "Bearer "+rec.Key {
		t.Errorf("report: %s %s auth %q", r.Method, r.Path, r.Auth)
	}
	var st struct {
		OSVersion  string `json:"os_version"`
		Supervisor string `json:"supervisor_version"`
	}
	if raw, ok := r.Body[uuid]; !ok || len(r.Body) != 1 || json.Unmarshal(raw, &st) != nil ||
		st.OSVersion != "balenaOS 2.113.0" || st.Supervisor == "" {
		t.Errorf("report body is not keyed by the device's UUID with the image's OS version: %v", r.Body)
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
	}
}
