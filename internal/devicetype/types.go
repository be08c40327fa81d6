package devicetype

import "sort"

// Arch is the CPU architecture a balenaOS image is built for, as balena's
// device-type contracts name it.
type Arch string

// Architectures of balena device types.
const (
	ArchAMD64   Arch = "amd64"
	ArchI386    Arch = "i386"
	ArchRPi     Arch = "rpi" // ARMv6 (Raspberry Pi 1 and Zero)
	ArchARMv7HF Arch = "armv7hf"
	ArchAARCH64 Arch = "aarch64"
)

// Boot is how the firmware of a device type starts balenaOS.
type Boot string

// Boot families of balena device types.
const (
	// BootUEFI: a GPT image with an EFI system partition (grub for EFI); the
	// machine must boot in UEFI mode.
	BootUEFI Boot = "uefi"
	// BootPC: an MBR image that boots on legacy BIOS and on UEFI.
	BootPC Boot = "pc"
	// BootRPi: the Raspberry Pi firmware reads config.txt from the first
	// (FAT) partition.
	BootRPi Boot = "rpi"
	// BootUBoot: u-boot with uEnv.txt (BeagleBone AM335x boards).
	BootUBoot Boot = "uboot"
	// BootExtlinux: u-boot with extlinux.conf (the 64-bit BeagleBoards).
	BootExtlinux Boot = "extlinux"
)

// Type is one balena device type.
type Type struct {
	Slug string
	Name string
	Arch Arch
	Boot Boot
	// Legacy types are no longer in balena's contracts; their images are
	// still accepted under the name they were downloaded with.
	Legacy bool
}

// types is the table, written from balena's public device-type contracts
// (contracts/hw.device-type/<slug>/contract.json: slug, name, data.arch);
// the boot family follows from how each board's firmware starts an image.
func types() []Type {
	return []Type{
		{Slug: "generic-amd64", Name: "Generic x86_64 (GPT)", Arch: ArchAMD64, Boot: BootUEFI},
		{Slug: "genericx86-64-ext", Name: "Generic x86_64 (legacy MBR)", Arch: ArchAMD64, Boot: BootPC},
		{Slug: "intel-nuc", Name: "Intel NUC", Arch: ArchAMD64, Boot: BootPC},
		{Slug: "genericx86-64", Name: "Generic x86_64 (old name)", Arch: ArchAMD64, Boot: BootPC, Legacy: true},
		{Slug: "intel-core2-32", Name: "Intel Core2 32 bit", Arch: ArchI386, Boot: BootPC, Legacy: true},
		{Slug: "generic-aarch64", Name: "Generic AARCH64", Arch: ArchAARCH64, Boot: BootUEFI},
		{Slug: "raspberry-pi", Name: "Raspberry Pi (v1 / Zero / Zero W)", Arch: ArchRPi, Boot: BootRPi},
		{Slug: "raspberry-pi2", Name: "Raspberry Pi 2", Arch: ArchARMv7HF, Boot: BootRPi},
		{Slug: "raspberrypi3", Name: "Raspberry Pi 3", Arch: ArchARMv7HF, Boot: BootRPi},
		{Slug: "raspberrypi3-64", Name: "Raspberry Pi 3 (using 64bit OS)", Arch: ArchAARCH64, Boot: BootRPi},
		{Slug: "raspberrypi0-2w-64", Name: "Raspberry Pi Zero 2 W (64bit)", Arch: ArchAARCH64, Boot: BootRPi},
		{Slug: "fincm3", Name: "Balena Fin (CM3)", Arch: ArchARMv7HF, Boot: BootRPi},
		{Slug: "raspberrypi4-64", Name: "Raspberry Pi 4 (using 64bit OS)", Arch: ArchAARCH64, Boot: BootRPi},
		{Slug: "raspberrypi400-64", Name: "Raspberry Pi 400", Arch: ArchAARCH64, Boot: BootRPi},
		{Slug: "raspberrypicm4-ioboard", Name: "Raspberry Pi CM4 IO Board", Arch: ArchAARCH64, Boot: BootRPi},
		{Slug: "raspberrypi5", Name: "Raspberry Pi 5 & CM5", Arch: ArchAARCH64, Boot: BootRPi},
		{Slug: "beaglebone-black", Name: "BeagleBone Black", Arch: ArchARMv7HF, Boot: BootUBoot},
		{Slug: "beaglebone-green", Name: "BeagleBone Green", Arch: ArchARMv7HF, Boot: BootUBoot},
		{Slug: "beaglebone-green-wifi", Name: "BeagleBone Green Wireless", Arch: ArchARMv7HF, Boot: BootUBoot},
		{Slug: "beaglebone-green-gateway", Name: "BeagleBone Green Gateway", Arch: ArchARMv7HF, Boot: BootUBoot},
		{Slug: "beaglebone-pocket", Name: "PocketBeagle", Arch: ArchARMv7HF, Boot: BootUBoot},
		{Slug: "beaglebone-ai64", Name: "BeagleBone AI64", Arch: ArchAARCH64, Boot: BootExtlinux},
		{Slug: "beagleplay", Name: "BeaglePlay", Arch: ArchAARCH64, Boot: BootExtlinux},
	}
}

// aliases are other names balena's contracts (and old image file names)
// give a type.
func aliases() map[string]string {
	return map[string]string{
		"raspberrypi": "raspberry-pi", "raspberry-pi1": "raspberry-pi",
		"raspberrypi2": "raspberry-pi2",
		"nuc":          "intel-nuc",
		"beaglebone":   "beaglebone-black", "beaglebone-ai-64": "beaglebone-ai64",
	}
}

// Aliases lists the other names of the type slug, sorted.
func Aliases(slug string) []string {
	var out []string
	for a, s := range aliases() {
		if s == slug {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// Types lists every device type balena-migrate knows, sorted by slug.
func Types() []Type {
	ts := types()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Slug < ts[j].Slug })
	return ts
}

// Lookup finds a type by slug or alias.
func Lookup(slug string) (Type, bool) {
	if s, ok := aliases()[slug]; ok {
		slug = s
	}
	for _, t := range types() {
		if t.Slug == slug {
			return t, true
		}
	}
	return Type{}, false
}

// SlugFromName finds the device-type tag in an image file name such as
// "balena-cloud-app-raspberrypi3-2.26.0+rev1-dev-v8.0.0.img.zip". A tag counts
// only as a whole dash/dot/underscore-separated run of words; the longest
// such tag wins. ok is false when the name carries no tag.
func SlugFromName(name string) (slug string, ok bool) {
	words := splitWords(name)
	best := ""
	for i := range words {
		for j := i + 1; j <= len(words) && j-i <= 4; j++ {
			cand := joinWords(words[i:j])
			if _, ok := Lookup(cand); ok && len(cand) > len(best) {
				best = cand
			}
		}
	}
	if best == "" {
		return "", false
	}
	t, _ := Lookup(best)
	return t.Slug, true
}
