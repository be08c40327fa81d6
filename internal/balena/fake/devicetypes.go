package fake

// arch is the CPU architecture of the device types the fake knows. balena
// lets a fleet hold devices of its own type and of any type whose
// architecture can run the fleet's releases; unknown types are compatible
// with themselves only.
var arch = map[string]string{
	"raspberry-pi":       "rpi",
	"raspberrypi0-2w-64": "aarch64",
	"raspberrypi3":       "armv7hf",
	"raspberrypi3-64":    "aarch64",
	"raspberrypi4-64":    "aarch64",
	"raspberrypi5":       "aarch64",
	"raspberrypi400-64":  "aarch64",
	"fincm3":             "armv7hf",
	"beaglebone-black":   "armv7hf",
	"generic-aarch64":    "aarch64",
	"genericx86-64-ext":  "amd64",
	"generic-amd64":      "amd64",
	"intel-nuc":          "amd64",
}

// runs lists the architectures whose releases a device of an architecture
// can run besides its own.
var runs = map[string][]string{
	"aarch64": {"armv7hf", "rpi"},
	"armv7hf": {"rpi"},
}

// compatible reports whether a device of type dev may join a fleet of
// type fleet.
func compatible(fleet, dev string) bool {
	if fleet == dev {
		return true
	}
	fa, da := arch[fleet], arch[dev]
	if fa == "" || da == "" {
		return false
	}
	if fa == da {
		return true
	}
	for _, a := range runs[da] {
		if a == fa {
			return true
		}
	}
	return false
}
