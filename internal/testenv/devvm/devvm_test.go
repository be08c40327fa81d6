package devvm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// boot boots a copy of a cached disk and waits for root's SSH.
func boot(t *testing.T, ctx context.Context, uefi bool) (Image, *Machine) {
	t.Helper()
	testenv.NeedRoot(t, "the cached device disk and its key are root's")
	testenv.NeedProgram(t, "qemu-system-x86_64")
	repo, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	find, name := FindBIOS, "bios"
	if uefi {
		find, name = FindUEFI, "uefi"
		testenv.NeedFile(t, OVMFCode, "the ovmf package (scripts/test-packages)")
	}
	img, err := find(repo)
	testenv.Need(t, err == nil, "the device VM disk: "+errString(err))
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := CopyDisk(ctx, img.Disk, disk); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: name, Disks: []string{disk}, Console: filepath.Join(dir, "console.log")}
	if uefi {
		cfg.UEFIVars = filepath.Join(dir, "vars.fd")
	}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	start := time.Now()
	if err := m.WaitSSH(ctx, img.RootLogin()); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(m.Console(), 40))
	}
	t.Logf("%s boot to SSH login: %v", name, time.Since(start).Round(time.Second))
	return img, m
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The device VM is what a migration starts from: a Debian 12 machine booted
// by the PC BIOS and grub from its MBR disk, reachable over SSH as root with
// a key and as a sudo user with a password, and it powers off on request.
func TestBIOSMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under TCG (about a minute)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	img, m := boot(t, ctx, false)

	out, err := m.Run(ctx, img.RootLogin(), `id -u; . /etc/os-release; echo "$ID $VERSION_ID"; findmnt -no SOURCE /; test -d /sys/firmware/efi && echo efi || echo bios; ip -4 route show default`)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"0", "debian 12", "/dev/vda1", "bios"}
	if len(got) < 5 {
		t.Fatalf("root session printed %q", out)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d: got %q, want %q (all: %q)", i, got[i], w, out)
		}
	}
	if !strings.Contains(got[4], "via 10.0.2.2") {
		t.Errorf("no default route through qemu's host address: %q", got[4])
	}
	if !strings.Contains(m.Console(), "GNU/Linux 12") && !strings.Contains(m.Console(), "Debian") {
		t.Errorf("the serial console recorded no boot:\n%s", tail(m.Console(), 20))
	}

	user, err := img.UserLogin()
	if err != nil {
		t.Fatal(err)
	}
	// the password reaches sudo on stdin, as the product sends it
	out, err = m.Run(ctx, user, "printf '%s\\n' '"+user.Password+"' | sudo -S -p '' id -u")
	if err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("sudo as %s: %q, %v", user.User, out, err)
	}
	wrong := Login{User: user.User, Password: user.Password + "x"}
	if _, err := m.Run(ctx, wrong, "true"); err == nil {
		t.Error("a wrong password logged in")
	}

	m.Run(ctx, img.RootLogin(), "systemctl poweroff")
	if err := m.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
}

// The UEFI device: OVMF boots grub's EFI image from the EFI system
// partition of a GPT disk; the sudo user logs in with its password.
func TestUEFIMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under TCG (about a minute)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	img, m := boot(t, ctx, true)
	user, err := img.UserLogin()
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Run(ctx, user, "id -un; findmnt -no SOURCE /; test -d /sys/firmware/efi && echo efi || echo bios; printf '%s\\n' '"+user.Password+"' | sudo -S -p '' sh -c 'id -u; sfdisk -d /dev/vda | grep -c \"label: gpt\"'")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(out), []string{"migrate", "/dev/vda2", "efi", "0", "1"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
	m.Run(ctx, img.RootLogin(), "systemctl poweroff")
	if err := m.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}
}
