package efiboot

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// The partition GUID of the example, as a GPT entry stores it.
var espGUID = [16]byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// efibootdump (efibootmgr's decoder) reads our load options as we meant them.
func TestLoadOptionAsEfibootdumpReadsIt(t *testing.T) {
	dump := testenv.NeedProgram(t, "efibootdump")
	for _, tc := range []struct {
		p    Partition
		want string
	}{
		{Partition{Number: 1, Start: 2048, Size: 81920, GPT: true, Signature: espGUID},
			`* balenaOS HD(1,GPT,c12a7328-f81f-11d2-ba4b-00a0c93ec93b,0x800,0x14000)/File(\EFI\BOOT\bootx64.efi)`},
		{Partition{Number: 1, Start: 8192, Size: 81920, Signature: [16]byte{0x78, 0x56, 0x34, 0x12}},
			`* balenaOS HD(1,MBR,0x12345678,0x2000,0x14000)/File(\EFI\BOOT\bootx64.efi)`},
	} {
		opt := LoadOption("balenaOS", tc.p, "/EFI/BOOT/bootx64.efi")
		f := filepath.Join(t.TempDir(), "Boot0007")
		os.WriteFile(f, opt, 0o644)
		out, err := exec.Command(dump, "-f", f).CombinedOutput()
		if err != nil {
			t.Fatalf("efibootdump: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(strings.TrimPrefix(string(out), f+":")); got != tc.want {
			t.Errorf("efibootdump says %q, want %q", got, tc.want)
		}
		if d := Describe(opt); "* "+strings.Replace(d, "\t", " ", 1) != strings.Replace(tc.want, "0x12345678", "12345678", 1) {
			t.Errorf("Describe = %q", d)
		}
	}
}

func TestAddFirst(t *testing.T) {
	dir := t.TempDir()
	put := func(name string, data []byte) {
		os.WriteFile(filepath.Join(dir, name+"-"+GlobalGUID), append([]byte{7, 0, 0, 0}, data...), 0o644)
	}
	old := LoadOption("debian", Partition{Number: 1, Start: 2048, Size: 2048, GPT: true}, `\EFI\debian\shimx64.efi`)
	put("Boot0000", LoadOption("UEFI Misc Device", Partition{Number: 1, Start: 2048, Size: 2048}, `\EFI\BOOT\BOOTX64.EFI`))
	put("Boot0001", old)
	put("BootOrder", []byte{1, 0, 0, 0})
	v := Vars{Dir: dir}
	opt := LoadOption("balenaOS", Partition{Number: 1, Start: 2048, Size: 81920, GPT: true, Signature: espGUID}, `\EFI\BOOT\bootx64.efi`)
	n, err := v.AddFirst(opt)
	if err != nil || n != 2 {
		t.Fatalf("AddFirst = %d, %v; want 2", n, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "Boot0002-"+GlobalGUID))
	if binary.LittleEndian.Uint32(raw) != attrNVBSRT || string(raw[4:]) != string(opt) {
		t.Errorf("Boot0002 holds %x", raw)
	}
	if order, _ := v.BootOrder(); len(order) != 3 || order[0] != 2 || order[1] != 1 || order[2] != 0 {
		t.Errorf("BootOrder %v, want [2 1 0]", order)
	}
	// Again (a retried step): the same entry, still first, nothing added.
	if n, err := v.AddFirst(opt); err != nil || n != 2 {
		t.Fatalf("second AddFirst = %d, %v", n, err)
	}
	if order, _ := v.BootOrder(); len(order) != 3 || order[0] != 2 {
		t.Errorf("BootOrder %v after the second call", order)
	}
	// An existing entry with the same bytes is moved first, not copied.
	if n, err := v.AddFirst(old); err != nil || n != 1 {
		t.Fatalf("AddFirst(existing) = %d, %v", n, err)
	}
	if order, _ := v.BootOrder(); len(order) != 3 || order[0] != 1 || order[1] != 2 {
		t.Errorf("BootOrder %v, want [1 2 0]", order)
	}
}

func TestAddFirstWithoutBootOrder(t *testing.T) {
	v := Vars{Dir: t.TempDir()}
	n, err := v.AddFirst(LoadOption("balenaOS", Partition{Number: 1, Start: 2048, Size: 8, GPT: true}, `\EFI\BOOT\bootx64.efi`))
	if err != nil || n != 0 {
		t.Fatalf("AddFirst = %d, %v", n, err)
	}
	if order, _ := v.BootOrder(); len(order) != 1 || order[0] != 0 {
		t.Errorf("BootOrder %v", order)
	}
}

func TestSecureBootAndHardDrive(t *testing.T) {
	for _, tc := range []struct {
		name              string
		secureBoot, setup []byte // nil: no variable
		enforced, known   bool
	}{
		{"on", []byte{1}, []byte{0}, true, true},
		{"off", []byte{0}, []byte{0}, false, true},
		{"setup mode", []byte{1}, []byte{1}, false, true},
		{"no variables", nil, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range map[string][]byte{"SecureBoot": tc.secureBoot, "SetupMode": tc.setup} {
				if data != nil {
					os.WriteFile(filepath.Join(dir, name+"-"+GlobalGUID), append([]byte{6, 0, 0, 0}, data...), 0o644)
				}
			}
			enforced, known, err := Vars{Dir: dir}.SecureBoot()
			if err != nil || enforced != tc.enforced || known != tc.known {
				t.Errorf("got %v %v %v", enforced, known, err)
			}
		})
	}
	p := Partition{Number: 2, Start: 4096, Size: 1 << 20, GPT: true, Signature: espGUID}
	if got, ok := HardDrive(LoadOption("debian", p, `\EFI\debian\shimx64.efi`)); !ok || got != p {
		t.Errorf("HardDrive = %+v %v, want %+v", got, ok, p)
	}
	if _, ok := HardDrive([]byte{1, 0, 0, 0, 4, 0, 'x', 0, 0, 0, 0x7f, 0xff, 4, 0}); ok {
		t.Error("a path without a Hard Drive node gave one")
	}
}
