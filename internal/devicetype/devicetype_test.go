package devicetype

import (
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// The table pinned: slug, architecture and boot family of every type, as
// balena's contracts name them.
func TestTypesTable(t *testing.T) {
	want := `beaglebone-ai64 aarch64 extlinux
beaglebone-black armv7hf uboot
beaglebone-green armv7hf uboot
beaglebone-green-gateway armv7hf uboot
beaglebone-green-wifi armv7hf uboot
beaglebone-pocket armv7hf uboot
beagleplay aarch64 extlinux
fincm3 armv7hf rpi
generic-aarch64 aarch64 uefi
generic-amd64 amd64 uefi
genericx86-64 amd64 pc legacy
genericx86-64-ext amd64 pc
intel-core2-32 i386 pc legacy
intel-nuc amd64 pc
raspberry-pi rpi rpi
raspberry-pi2 armv7hf rpi
raspberrypi0-2w-64 aarch64 rpi
raspberrypi3 armv7hf rpi
raspberrypi3-64 aarch64 rpi
raspberrypi4-64 aarch64 rpi
raspberrypi400-64 aarch64 rpi
raspberrypi5 aarch64 rpi
raspberrypicm4-ioboard aarch64 rpi`
	var got []string
	for _, ty := range Types() {
		l := string(ty.Slug) + " " + string(ty.Arch) + " " + string(ty.Boot)
		if ty.Legacy {
			l += " legacy"
		}
		got = append(got, l)
	}
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("device-type table:\n%s\nwant:\n%s", g, want)
	}
}

// boards are real inputs of each detected board and the slugs, in order of
// preference, whose images boot on it.
var boards = []struct {
	name   string
	in     Inputs
	slugs  string
	family Family
}{
	{"Pi 1 B old revision", Inputs{Machine: "armv6l", CPUInfo: "Hardware\t: BCM2835\nRevision\t: 000e\n"}, "raspberry-pi", FamilyRaspberryPi},
	{"Pi 1 B over-volted", Inputs{Machine: "armv6l", CPUInfo: "Hardware\t: BCM2708\nRevision\t: 1000002\n"}, "raspberry-pi", FamilyRaspberryPi},
	{"Pi Zero W", Inputs{Machine: "armv6l", CPUInfo: "Revision\t: 9000c1\n", DTModel: "Raspberry Pi Zero W Rev 1.1\x00"}, "raspberry-pi", FamilyRaspberryPi},
	{"Pi 2", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: a01041\n", DTModel: "Raspberry Pi 2 Model B Rev 1.1\x00"}, "raspberry-pi2", FamilyRaspberryPi},
	{"Pi 3 32-bit OS", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: a02082\n", DTModel: "Raspberry Pi 3 Model B Rev 1.2\x00"}, "raspberrypi3 raspberrypi3-64", FamilyRaspberryPi},
	{"Pi 3B+ 64-bit OS", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: a020d3\n", DTModel: "Raspberry Pi 3 Model B Plus Rev 1.3\x00"}, "raspberrypi3-64 raspberrypi3", FamilyRaspberryPi},
	{"Pi Zero 2 W 32-bit OS", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: 902120\n", DTModel: "Raspberry Pi Zero 2 W Rev 1.0\x00"}, "raspberrypi0-2w-64 raspberrypi3 raspberrypi3-64", FamilyRaspberryPi},
	{"Pi Zero 2 W from model only", Inputs{Machine: "aarch64", DTModel: "Raspberry Pi Zero 2 W Rev 1.0\x00"}, "raspberrypi0-2w-64 raspberrypi3-64 raspberrypi3", FamilyRaspberryPi},
	{"CM3", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: a020a0\n", DTModel: "Raspberry Pi Compute Module 3 Rev 1.0\x00"}, "raspberrypi3 raspberrypi3-64 fincm3", FamilyRaspberryPi},
	{"Pi 4", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: c03114\n", DTModel: "Raspberry Pi 4 Model B Rev 1.4\x00"}, "raspberrypi4-64", FamilyRaspberryPi},
	{"Pi 4 32-bit OS", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: b03115\n", DTModel: "Raspberry Pi 4 Model B Rev 1.5\x00"}, "raspberrypi4-64", FamilyRaspberryPi},
	{"Pi 4 from model only", Inputs{Machine: "aarch64", DTModel: "Raspberry Pi 4 Model B Rev 1.1\x00"}, "raspberrypi4-64", FamilyRaspberryPi},
	{"Pi 400", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: c03130\n", DTModel: "Raspberry Pi 400 Rev 1.0\x00"}, "raspberrypi400-64 raspberrypi4-64", FamilyRaspberryPi},
	{"CM4", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: b03140\n", DTModel: "Raspberry Pi Compute Module 4 Rev 1.0\x00"}, "raspberrypicm4-ioboard raspberrypi4-64", FamilyRaspberryPi},
	{"Pi 5", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: d04170\n", DTModel: "Raspberry Pi 5 Model B Rev 1.0\x00"}, "raspberrypi5", FamilyRaspberryPi},
	{"Pi 500 from model only", Inputs{Machine: "aarch64", DTModel: "Raspberry Pi 500 Rev 1.0\x00"}, "raspberrypi5", FamilyRaspberryPi},
	{"CM5", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: d04180\n", DTModel: "Raspberry Pi Compute Module 5 Rev 1.0\x00"}, "raspberrypi5", FamilyRaspberryPi},
	{"BeagleBone Black", Inputs{Machine: "armv7l", DTModel: "TI AM335x BeagleBone Black\x00"}, "beaglebone-black", FamilyBeagleBone},
	{"BeagleBone Green", Inputs{Machine: "armv7l", CPUInfo: "Hardware\t: Generic AM33XX (Flattened Device Tree)\nRevision\t: 0000\n", DTModel: "TI AM335x BeagleBone Green\x00"}, "beaglebone-green", FamilyBeagleBone},
	{"BeagleBone Green Wireless", Inputs{Machine: "armv7l", DTModel: "TI AM335x BeagleBone Green Wireless\x00"}, "beaglebone-green-wifi", FamilyBeagleBone},
	{"BeagleBone Green Gateway", Inputs{Machine: "armv7l", DTModel: "TI AM335x BeagleBone Green Gateway\x00"}, "beaglebone-green-gateway", FamilyBeagleBone},
	{"PocketBeagle", Inputs{Machine: "armv7l", DTModel: "TI AM335x PocketBeagle\x00"}, "beaglebone-pocket", FamilyBeagleBone},
	{"BeagleBone AI-64", Inputs{Machine: "aarch64", DTModel: "BeagleBoard.org BeagleBone AI-64\x00"}, "beaglebone-ai64", FamilyExtlinux},
	{"BeaglePlay", Inputs{Machine: "aarch64", DTModel: "BeagleBoard.org BeaglePlay\x00", EFI: false}, "beagleplay", FamilyExtlinux},
	{"x86_64 BIOS", Inputs{Machine: "x86_64"}, "genericx86-64-ext intel-nuc genericx86-64", FamilyPC},
	{"x86_64 UEFI", Inputs{Machine: "x86_64", EFI: true}, "generic-amd64 genericx86-64-ext intel-nuc genericx86-64", FamilyPC},
	{"i686", Inputs{Machine: "i686"}, "intel-core2-32", FamilyPC},
	{"aarch64 UEFI server", Inputs{Machine: "aarch64", EFI: true, DTModel: ""}, "generic-aarch64", FamilyPC},
}

func TestDetectBoards(t *testing.T) {
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			d, err := Detect(b.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(d.Slugs, " "); got != b.slugs || d.Family != b.family {
				t.Errorf("%s: slugs %q family %v, want %q %v", d.Name, got, d.Family, b.slugs, b.family)
			}
		})
	}
}

// Every type in the table is the choice of some board, and every slug a
// board accepts is in the table with an architecture its CPU runs.
func TestBoardsCoverTable(t *testing.T) {
	runs := map[string][]Arch{
		"armv6l": {ArchRPi}, "armv7l": {ArchRPi, ArchARMv7HF, ArchAARCH64}, "aarch64": {ArchRPi, ArchARMv7HF, ArchAARCH64},
		"x86_64": {ArchAMD64, ArchI386}, "i686": {ArchI386},
	}
	chosen := map[string]bool{}
	for _, b := range boards {
		d, err := Detect(b.in)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range d.Slugs {
			chosen[s] = true
			ty, ok := Lookup(s)
			if !ok {
				t.Errorf("%s accepts %s, which is not in the table", b.name, s)
			}
			found := false
			for _, a := range runs[b.in.Machine] {
				found = found || a == ty.Arch
			}
			if !found {
				t.Errorf("%s (%s) accepts %s images built for %s", b.name, b.in.Machine, s, ty.Arch)
			}
		}
	}
	for _, ty := range Types() {
		if !chosen[ty.Slug] {
			t.Errorf("no board accepts %s", ty.Slug)
		}
	}
}

func TestDetectRefuses(t *testing.T) {
	for name, in := range map[string]Inputs{
		"other ARM board":         {Machine: "aarch64", DTModel: "Pine64 RockPro64 v2.1\x00"},
		"BeagleBone AI (32 bit)":  {Machine: "armv7l", DTModel: "BeagleBoard.org BeagleBone AI\x00"},
		"BeagleBone Black Wless":  {Machine: "armv7l", DTModel: "TI AM335x BeagleBone Black Wireless\x00"},
		"unknown Pi revision":     {Machine: "aarch64", CPUInfo: "Hardware\t: BCM2835\nRevision\t: 9fff0\n"},
		"riscv":                   {Machine: "riscv64"},
		"armv7 without EFI/model": {Machine: "armv7l", EFI: true},
	} {
		if d, err := Detect(in); !errors.Is(err, ErrUnknown) {
			t.Errorf("%s: want ErrUnknown, got %+v, %v", name, d, err)
		}
	}
}

func TestPi3DoesNotAcceptPi4Images(t *testing.T) {
	d, err := PiFromRevision("a02082", "armv7l")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"raspberrypi4-64", "raspberry-pi", "genericx86-64", "generic-amd64"} {
		if d.Accepts(s) {
			t.Errorf("a Pi 3 accepts %s images", s)
		}
	}
	if !d.Accepts("raspberrypi3") {
		t.Error("a Pi 3 refuses raspberrypi3 images")
	}
}

func TestAcceptsAliases(t *testing.T) {
	d, _ := Detect(Inputs{Machine: "armv6l", CPUInfo: "Hardware\t: BCM2835\nRevision\t: 000e\n"})
	if !d.Accepts("raspberrypi") {
		t.Error("the contracts' alias raspberrypi is not raspberry-pi")
	}
	d, _ = Detect(Inputs{Machine: "x86_64"})
	if !d.Accepts("nuc") || d.Accepts("generic-amd64") {
		t.Errorf("BIOS PC: nuc accepted %v, generic-amd64 (UEFI only) accepted %v", d.Accepts("nuc"), d.Accepts("generic-amd64"))
	}
}

func TestSlugFromName(t *testing.T) {
	cases := map[string]string{
		"balena-cloud-appname-raspberrypi3-2.26.0+rev1-dev-v8.0.0.img.zip": "raspberrypi3",
		"balena-cloud-app-raspberrypi3-64-2.88.4-v12.11.0.img.gz":          "raspberrypi3-64",
		"resin-raspberrypi3-2.15.1+rev2-dev-v7.16.6.img.gz":                "raspberrypi3",
		"resin-image-genericx86-64.resinos.img.gz":                         "genericx86-64",
		"resin-genericx86-64-ext-2.99.img.gz":                              "genericx86-64-ext",
		"balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img.zip":          "generic-amd64",
		"balena-cloud-fleet-generic-aarch64-6.0.13.img":                    "generic-aarch64",
		"balena-cloud-x-beaglebone-green-wifi-2.38.0.img":                  "beaglebone-green-wifi",
		"balena-cloud-x-beaglebone-green-2.38.0.img":                       "beaglebone-green",
		"balena-cloud-x-beaglebone-pocket-2.38.0.img":                      "beaglebone-pocket",
		"resin-raspberry-pi2-2.2.0.img.gz":                                 "raspberry-pi2",
		"resin-raspberry-pi1-2.2.0.img.gz":                                 "raspberry-pi",
		"balena-cloud-lab-intel-core2-32-2.48.0.img":                       "intel-core2-32",
		"balena-cloud-fleet-raspberrypi4-64-5.1.20-v16.4.img.gz":           "raspberrypi4-64",
		"balena-cloud-fleet-raspberrypi0-2w-64-6.1.img.gz":                 "raspberrypi0-2w-64",
		"balena-cloud-fleet-raspberrypi5-6.1.img.gz":                       "raspberrypi5",
	}
	for name, want := range cases {
		if got, ok := SlugFromName(name); !ok || got != want {
			t.Errorf("%s: got %q %v, want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"balenaos.img.gz", "my-raspberrypi3x-image.img", "genericx86.img", "generic.img"} {
		if got, ok := SlugFromName(name); ok {
			t.Errorf("%s: found tag %q in a name without one", name, got)
		}
	}
}

// Every type is recognised as an image name tag.
func TestEverySlugIsATag(t *testing.T) {
	for _, ty := range Types() {
		if got, ok := SlugFromName("balena-cloud-app-" + ty.Slug + "-6.0.0.img.gz"); !ok || got != ty.Slug {
			t.Errorf("image tagged %s is read as %q", ty.Slug, got)
		}
	}
}

func TestParseProbe(t *testing.T) {
	out := "@machine\naarch64\n@efi\n@model\nRaspberry Pi 4 Model B Rev 1.4\n@cpuinfo\nprocessor\t: 0\nRevision\t: c03114\n"
	in := ParseProbe(out)
	if in.Machine != "aarch64" || in.EFI || in.DTModel != "Raspberry Pi 4 Model B Rev 1.4" || !strings.Contains(in.CPUInfo, "c03114") {
		t.Fatalf("%+v", in)
	}
	d, err := Detect(in)
	if err != nil || d.Slugs[0] != "raspberrypi4-64" {
		t.Fatalf("%+v %v", d, err)
	}
}

// The probe runs in the real shell of this machine and reads its facts.
func TestProbeOnThisMachine(t *testing.T) {
	out, err := exec.Command("/bin/sh", "-c", Probe).Output()
	if err != nil {
		t.Fatal(err)
	}
	in := ParseProbe(string(out))
	want := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686"}[runtime.GOARCH]
	if want != "" && in.Machine != want {
		t.Fatalf("probe says machine %q on %s:\n%s", in.Machine, runtime.GOARCH, out)
	}
	if !strings.Contains(in.CPUInfo, "processor") {
		t.Errorf("probe read no /proc/cpuinfo:\n%s", out)
	}
}
