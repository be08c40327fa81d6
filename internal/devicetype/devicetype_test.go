package devicetype

import (
	"errors"
	"testing"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		name       string
		in         Inputs
		want       string // first slug
		family     Family
		wantErr    bool
		acceptsToo string
	}{
		{"Pi 1 B old revision", Inputs{Machine: "armv6l", CPUInfo: "Hardware\t: BCM2835\nRevision\t: 000e\n"}, "raspberry-pi", FamilyRaspberryPi, false, ""},
		{"Pi 1 B over-volted", Inputs{Machine: "armv6l", CPUInfo: "Hardware\t: BCM2708\nRevision\t: 1000002\n"}, "raspberry-pi", FamilyRaspberryPi, false, ""},
		{"Pi Zero W", Inputs{Machine: "armv6l", CPUInfo: "Revision\t: 9000c1\n", DTModel: "Raspberry Pi Zero W Rev 1.1\x00"}, "raspberry-pi", FamilyRaspberryPi, false, ""},
		{"Pi 2", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: a01041\n", DTModel: "Raspberry Pi 2 Model B Rev 1.1\x00"}, "raspberry-pi2", FamilyRaspberryPi, false, ""},
		{"Pi 3", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: a02082\n", DTModel: "Raspberry Pi 3 Model B Rev 1.2\x00"}, "raspberrypi3", FamilyRaspberryPi, false, "raspberrypi3-64"},
		{"Pi 3B+", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: a020d3\n", DTModel: "Raspberry Pi 3 Model B Plus Rev 1.3\x00"}, "raspberrypi3", FamilyRaspberryPi, false, ""},
		{"Pi 4", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: c03114\n", DTModel: "Raspberry Pi 4 Model B Rev 1.4\x00"}, "raspberrypi4-64", FamilyRaspberryPi, false, ""},
		{"Pi 400", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: c03130\n", DTModel: "Raspberry Pi 400 Rev 1.0\x00"}, "raspberrypi400-64", FamilyRaspberryPi, false, "raspberrypi4-64"},
		{"Pi 5", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: d04170\n", DTModel: "Raspberry Pi 5 Model B Rev 1.0\x00"}, "raspberrypi5", FamilyRaspberryPi, false, ""},
		{"CM3", Inputs{Machine: "armv7l", CPUInfo: "Revision\t: a020a0\n", DTModel: "Raspberry Pi Compute Module 3 Rev 1.0\x00"}, "raspberrypi3", FamilyRaspberryPi, false, "fincm3"},
		{"CM4", Inputs{Machine: "aarch64", CPUInfo: "Revision\t: b03140\n", DTModel: "Raspberry Pi Compute Module 4 Rev 1.0\x00"}, "raspberrypicm4-ioboard", FamilyRaspberryPi, false, ""},
		{"Pi 4 from model only", Inputs{Machine: "aarch64", DTModel: "Raspberry Pi 4 Model B Rev 1.1\x00"}, "raspberrypi4-64", FamilyRaspberryPi, false, ""},
		{"Pi Zero 2 W from model only", Inputs{Machine: "aarch64", DTModel: "Raspberry Pi Zero 2 W Rev 1.0\x00"}, "raspberrypi0-2w-64", FamilyRaspberryPi, false, ""},
		{"BeagleBone Green", Inputs{Machine: "armv7l", CPUInfo: "Hardware\t: Generic AM33XX (Flattened Device Tree)\nRevision\t: 0000\n", DTModel: "TI AM335x BeagleBone Green\x00"}, "beaglebone-green", FamilyBeagleBone, false, ""},
		{"BeagleBone Black", Inputs{Machine: "armv7l", DTModel: "TI AM335x BeagleBone Black\x00"}, "beaglebone-black", FamilyBeagleBone, false, ""},
		{"x86_64", Inputs{Machine: "x86_64"}, "genericx86-64", FamilyPC, false, "intel-nuc"},
		{"i686", Inputs{Machine: "i686"}, "intel-core2-32", FamilyPC, false, ""},
		{"other ARM board", Inputs{Machine: "aarch64", DTModel: "Pine64 RockPro64 v2.1\x00"}, "", 0, true, ""},
		{"BeagleBone AI", Inputs{Machine: "armv7l", DTModel: "BeagleBoard.org BeagleBone AI\x00"}, "", 0, true, ""},
		{"unknown Pi revision", Inputs{Machine: "aarch64", CPUInfo: "Hardware\t: BCM2835\nRevision\t: 9fff0\n"}, "", 0, true, ""},
		{"riscv", Inputs{Machine: "riscv64"}, "", 0, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Detect(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrUnknown) {
					t.Fatalf("want ErrUnknown, got %+v, %v", d, err)
				}
				return
			}
			if err != nil || d.Slugs[0] != tc.want || d.Family != tc.family {
				t.Fatalf("got %+v, %v; want %s (%v)", d, err, tc.want, tc.family)
			}
			if tc.acceptsToo != "" && !d.Accepts(tc.acceptsToo) {
				t.Errorf("%s does not accept %s", d.Name, tc.acceptsToo)
			}
		})
	}
}

func TestPi3DoesNotAcceptPi4Images(t *testing.T) {
	d, err := PiFromRevision("a02082")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"raspberrypi4-64", "raspberry-pi", "genericx86-64"} {
		if d.Accepts(s) {
			t.Errorf("a Pi 3 accepts %s images", s)
		}
	}
}

func TestSlugFromName(t *testing.T) {
	cases := map[string]string{
		"balena-cloud-appname-raspberrypi3-2.26.0+rev1-dev-v8.0.0.img.zip": "raspberrypi3",
		"balena-cloud-app-raspberrypi3-64-2.88.4-v12.11.0.img.gz":          "raspberrypi3-64",
		"resin-raspberrypi3-2.15.1+rev2-dev-v7.16.6.img.gz":                "raspberrypi3",
		"resin-image-genericx86-64.resinos.img.gz":                         "genericx86-64",
		"resin-genericx86-64-ext-2.99.img.gz":                              "genericx86-64-ext",
		"balena-cloud-x-beaglebone-green-wifi-2.38.0.img":                  "beaglebone-green-wifi",
		"balena-cloud-x-beaglebone-green-2.38.0.img":                       "beaglebone-green",
		"resin-raspberry-pi2-2.2.0.img.gz":                                 "raspberry-pi2",
		"resin-raspberry-pi1-2.2.0.img.gz":                                 "raspberry-pi",
		"balena-cloud-lab-intel-core2-32-2.48.0.img":                       "intel-core2-32",
		"balena-cloud-fleet-raspberrypi4-64-5.1.20-v16.4.img.gz":           "raspberrypi4-64",
	}
	for name, want := range cases {
		if got, ok := SlugFromName(name); !ok || got != want {
			t.Errorf("%s: got %q %v, want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"balenaos.img.gz", "my-raspberrypi3x-image.img", "genericx86.img"} {
		if got, ok := SlugFromName(name); ok {
			t.Errorf("%s: found tag %q in a name without one", name, got)
		}
	}
}

// Every slug a device accepts is also recognised as an image name tag.
func TestEverySlugIsATag(t *testing.T) {
	for _, g := range []string{"pi1", "pi2", "pi3", "pi0w2", "cm3", "pi4", "pi400", "cm4", "pi5"} {
		for _, s := range gen(g) {
			if got, ok := SlugFromName("balena-cloud-app-" + s + "-6.0.0.img.gz"); !ok || got != s {
				t.Errorf("image tagged %s is read as %q", s, got)
			}
		}
	}
}
