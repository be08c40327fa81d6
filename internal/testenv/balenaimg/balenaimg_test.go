package balenaimg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

type request struct {
	method, path, auth string
	body               map[string]json.RawMessage
}

// recorder is the balena API as far as the stand-in uses it: it records
// every request and accepts the state report of one device key only.
type recorder struct {
	key  string
	mu   sync.Mutex
	reqs []request
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var body map[string]json.RawMessage
	json.Unmarshal(b, &body)
	r.mu.Lock()
	r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.Header.Get("Authorization"), body})
	r.mu.Unlock()
	if req.Header.Get("Authorization") != "Bearer "+r.key {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func backupTgz(t *testing.T, names ...string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
		tw.Write([]byte("x\n"))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
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

	rec := &recorder{key: "device-key-1234"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec}
	go srv.Serve(l)
	defer srv.Close()
	const uuid = "0123456789abcdef0123456789abcdef"
	cfg, _ := json.Marshal(map[string]any{"uuid": uuid, "deviceApiKey": rec.key, "deviceType": "genericx86-64-ext",
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
	if strings.Contains(console, rec.key) {
		t.Error("the device key reached the console")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// What the supervisor does first: its target state, then its state.
	if len(rec.reqs) != 2 {
		t.Fatalf("API saw %d requests, want 2: %+v", len(rec.reqs), rec.reqs)
	}
	if g := rec.reqs[0]; g.method != http.MethodGet || g.path != "/device/v3/"+uuid+"/state" || g.auth != "Bearer "+rec.key {
		t.Errorf("first request: %s %s auth %q", g.method, g.path, g.auth)
	}
	r := rec.reqs[1]
	if r.method != http.MethodPatch || r.path != "/device/v3/state" || r.auth != "Bearer "+rec.key {
		t.Errorf("report: %s %s auth %q", r.method, r.path, r.auth)
	}
	var st struct {
		OSVersion  string `json:"os_version"`
		Supervisor string `json:"supervisor_version"`
	}
	if raw, ok := r.body[uuid]; !ok || len(r.body) != 1 || json.Unmarshal(raw, &st) != nil ||
		st.OSVersion != "balenaOS 2.113.0" || st.Supervisor == "" {
		t.Errorf("report body is not keyed by the device's UUID with the image's OS version: %v", r.body)
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
	}
}
