package fakebalena

import "github.com/fleetmig/balena-migrate/internal/devicetype"

// runs lists the architectures whose releases a device of an architecture
// can run besides its own.
var runs = map[devicetype.Arch][]devicetype.Arch{
	devicetype.ArchAARCH64: {devicetype.ArchARMv7HF, devicetype.ArchRPi},
	devicetype.ArchARMv7HF: {devicetype.ArchRPi},
	devicetype.ArchAMD64:   {devicetype.ArchI386},
}

// compatible reports whether a device of type dev may join a fleet of
// type fleet: balena lets a fleet hold devices whose architecture can run
// the fleet's releases. Types the device-type table does not know are
// compatible with themselves only.
func compatible(fleet, dev string) bool {
	if fleet == dev {
		return true
	}
	ft, ok1 := devicetype.Lookup(fleet)
	dt, ok2 := devicetype.Lookup(dev)
	if !ok1 || !ok2 {
		return false
	}
	if ft.Arch == dt.Arch {
		return true
	}
	for _, a := range runs[dt.Arch] {
		if a == ft.Arch {
			return true
		}
	}
	return false
}
