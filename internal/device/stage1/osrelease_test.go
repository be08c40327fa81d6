package stage1

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devproto"
)

// Real /etc/os-release files (trimmed to the fields that matter) and what
// the OS check makes of them.
func TestSupportedBase(t *testing.T) {
	cases := []struct {
		name, osRelease, base string
		ok                    bool
	}{
		{"Debian 10", "PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nVERSION_ID=\"10\"\nVERSION_CODENAME=buster\nID=debian\n", "Debian 10", true},
		{"Debian 11", "PRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\nVERSION_ID=\"11\"\nVERSION_CODENAME=bullseye\nID=debian\n", "Debian 11", true},
		{"Debian 12", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n", "Debian 12", true},
		{"Debian 13", "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nDEBIAN_VERSION_FULL=13.1\nID=debian\n", "Debian 13", true},
		{"Debian testing", "PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nVERSION_CODENAME=forky\nID=debian\n", "", false},
		{"Debian 8", "PRETTY_NAME=\"Debian GNU/Linux 8 (jessie)\"\nVERSION_ID=\"8\"\nID=debian\n", "", false},
		{"Raspbian 12 (32-bit Raspberry Pi OS)", "PRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=raspbian\nID_LIKE=debian\n", "Debian 12", true},
		{"Raspbian 13", "PRETTY_NAME=\"Raspbian GNU/Linux 13 (trixie)\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nID=raspbian\nID_LIKE=debian\n", "Debian 13", true},
		{"Ubuntu 18.04", "NAME=\"Ubuntu\"\nVERSION=\"18.04.6 LTS (Bionic Beaver)\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"18.04\"\nUBUNTU_CODENAME=bionic\n", "Ubuntu 18.04", true},
		{"Ubuntu 20.04", "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"20.04\"\nVERSION_CODENAME=focal\nUBUNTU_CODENAME=focal\n", "Ubuntu 20.04", true},
		{"Ubuntu 22.04", "PRETTY_NAME=\"Ubuntu 22.04.5 LTS\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n", "Ubuntu 22.04", true},
		{"Ubuntu 24.04", "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=noble\n", "Ubuntu 24.04", true},
		{"Ubuntu 25.10", "PRETTY_NAME=\"Ubuntu 25.10\"\nVERSION_ID=\"25.10\"\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=questing\n", "Ubuntu 25.10", true},
		{"Ubuntu 26.04", "PRETTY_NAME=\"Ubuntu 26.04 LTS\"\nVERSION_ID=\"26.04\"\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=resolute\n", "Ubuntu 26.04", true},
		{"Ubuntu 26.10", "PRETTY_NAME=\"Ubuntu 26.10\"\nVERSION_ID=\"26.10\"\nID=ubuntu\nID_LIKE=debian\n", "", false},
		{"Linux Mint 21.3", "NAME=\"Linux Mint\"\nVERSION=\"21.3 (Virginia)\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"21.3\"\nVERSION_CODENAME=virginia\nUBUNTU_CODENAME=jammy\n", "Ubuntu 22.04", true},
		{"LMDE 6", "PRETTY_NAME=\"LMDE 6 (faye)\"\nVERSION_ID=\"6\"\nVERSION_CODENAME=faye\nID=linuxmint\nID_LIKE=debian\nDEBIAN_CODENAME=bookworm\n", "Debian 12", true},
		{"Fedora 41", "NAME=\"Fedora Linux\"\nVERSION_ID=41\nID=fedora\nPRETTY_NAME=\"Fedora Linux 41 (Workstation Edition)\"\n", "", false},
		{"derivative without a base codename", "ID=someos\nID_LIKE=debian\nVERSION_ID=\"3\"\n", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base, ok := supportedBase(parseOSRelease(tc.osRelease))
			if ok != tc.ok || ok && base != tc.base {
				t.Errorf("got %q %v, want %q %v", base, ok, tc.base, tc.ok)
			}
		})
	}
}

// An unlisted system is refused naming the override; with NO_OS_CHECK it
// runs, and the log says so loudly.
func TestNoOSCheck(t *testing.T) {
	static := buildStatic(t)
	fedoraLike := "NAME=\"Example Linux\"\nID=example\nVERSION_ID=\"7\"\nPRETTY_NAME=\"Example Linux 7\"\n"

	d := newDevice(t, fixtures[5], static)
	d.write("/etc/os-release", []byte(fedoraLike))
	before := d.tree(t)
	_, err := d.run()
	if !errors.Is(err, ErrOS) || ClassOf(err) != devproto.ClassOS || !strings.Contains(err.Error(), "Example Linux 7") || !strings.Contains(err.Error(), "--no-os-check (NO_OS_CHECK=TRUE)") {
		t.Fatalf("want a refusal naming the system and the override, got %v", err)
	}
	if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
		t.Fatalf("a refused run changed the device: %v", diff)
	}

	d.cfg.NoOSCheck = true
	if _, err := d.run(); err != nil {
		t.Fatalf("with NO_OS_CHECK: %v\n%s", err, d.log.String())
	}
	if !strings.Contains(d.log.String(), "WARN: NO_OS_CHECK: Example Linux 7 (ID=example VERSION_ID=7) is not a tested system") {
		t.Errorf("the override is not in the log:\n%s", d.log.String())
	}
}

// Ubuntu 26.04 as installed builds its initramfs with dracut: refused,
// naming what is missing, even with NO_OS_CHECK; with initramfs-tools
// installed it migrates.
func TestDracutSystemRefused(t *testing.T) {
	static := buildStatic(t)
	f := fixture{"ubuntu2604-dracut", "x86_64", "7.0.0-14-generic", "/home/admin/migrate", "balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img.gz"}
	d := newDevice(t, f, static)
	before := d.tree(t)
	for _, noCheck := range []bool{false, true} {
		d.cfg.NoOSCheck = noCheck
		_, err := d.run()
		if !errors.Is(err, ErrMissingProg) || ClassOf(err) != devproto.ClassOS {
			t.Fatalf("NO_OS_CHECK=%v: want ErrMissingProg, got %v", noCheck, err)
		}
		for _, want := range []string{"with dracut", "needs initramfs-tools", "mkinitramfs, /usr/share/initramfs-tools/hook-functions, /etc/initramfs-tools/initramfs.conf is missing", "install the initramfs-tools package"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal lacks %q: %v", want, err)
			}
		}
	}
	if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
		t.Fatalf("a refused run changed the device: %v", diff)
	}

	// apt install initramfs-tools
	if err := copyTree(filepath.Join("testdata", "ubuntu2404-uefi", "etc", "initramfs-tools"), d.path("/etc/initramfs-tools")); err != nil {
		t.Fatal(err)
	}
	d.write("/usr/share/initramfs-tools/hook-functions", []byte("# hook functions\n"))
	for _, prog := range []string{"mkinitramfs", "lsinitramfs"} {
		d.write("/usr/sbin/"+prog, []byte("#!/bin/sh\n"))
		if err := os.Chmod(d.path("/usr/sbin/"+prog), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.cfg.NoOSCheck = false
	if _, err := d.run(); err != nil {
		t.Fatalf("Ubuntu 26.04 with initramfs-tools: %v\n%s", err, d.log.String())
	}
	if !strings.Contains(d.log.String(), "system: Ubuntu 26.04 LTS on UEFI PC (x86_64), kernel 7.0.0-14-generic") {
		t.Errorf("log:\n%s", d.log.String())
	}
}
